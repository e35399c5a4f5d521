using FsCheck;
using FsCheck.Fluent;
using QuantServe.Api.Serving;

namespace QuantServe.Api.Tests.Serving;

public sealed class StopSequenceMatcherTests
{
    private static string Run(StopSequenceMatcher m, IEnumerable<string> pieces)
    {
        var sb = new System.Text.StringBuilder();
        foreach (var p in pieces)
        {
            sb.Append(m.Push(p));
            if (m.Stopped) break;
        }
        sb.Append(m.Flush());
        return sb.ToString();
    }

    [Fact]
    public void Push_StopSplitAcrossPieces_EmitsTextBeforeStopOnly()
    {
        var m = new StopSequenceMatcher(["\n\nThe"]);
        Assert.Equal("Once upon", m.Push("Once upon"));
        Assert.Equal(" a time.", m.Push(" a time.\n"));
        Assert.Equal("", m.Push("\nTh"));
        Assert.False(m.Stopped);
        Assert.Equal("", m.Push("e end"));
        Assert.True(m.Stopped);
        Assert.Equal("", m.Flush());
        Assert.Equal("Once upon a time.".Length, m.EmittedLength);
    }

    [Fact]
    public void Flush_HeldPrefixThatNeverCompletes_IsReleased()
    {
        var m = new StopSequenceMatcher(["END"]);
        Assert.Equal("abc", m.Push("abcEN"));
        Assert.Equal("EN", m.Flush());
    }

    [Fact]
    public void Push_EarliestOfSeveralStops_Wins()
    {
        var m = new StopSequenceMatcher(["xyz", "b"]);
        Assert.Equal("a", Run(m, ["abxyz"]));
    }

    [Fact]
    public void Push_ShortStopInsideLongerEarlierStop_WaitsForTheEarlierOne()
    {
        // FsCheck's counterexample: "c" matches at 1 while "\ncaa", starting at 0, is still incomplete.
        var completes = new StopSequenceMatcher(["\ncaa", "b", "c"]);
        Assert.Equal("", Run(completes, ["\nc", "aa\nc"]));
        Assert.True(completes.Stopped);

        var breaks = new StopSequenceMatcher(["\ncaa", "c"]);
        Assert.Equal("", breaks.Push("\nc"));
        Assert.False(breaks.Stopped);
        Assert.Equal("\n", breaks.Push("x"));
        Assert.True(breaks.Stopped);

        var ends = new StopSequenceMatcher(["\ncaa", "c"]);
        Assert.Equal("", ends.Push("\nc"));
        Assert.Equal("\n", ends.Flush());
        Assert.True(ends.Stopped);
    }

    [Fact]
    public void Push_AnySplitOfText_EqualsWholeTextCutAtFirstStop()
    {
        // Property: however the text is split into pieces, the output is the text up to the first stop occurrence.
        var alphabet = Gen.Elements('a', 'b', 'c', '\n');
        var text = Gen.ArrayOf(alphabet).Select(a => new string(a));
        var stop = Gen.NonEmptyListOf(alphabet).Select(a => new string(a.Take(4).ToArray()));
        var cuts = Gen.ListOf(Gen.Choose(0, 64));
        Prop.ForAll(Arb.From(text), Arb.From(Gen.ListOf(stop).Select(l => l.Take(3).ToList())), Arb.From(cuts), (t, stops, cutList) =>
        {
            var positions = cutList.Select(c => Math.Min(c, t.Length)).Append(0).Append(t.Length).Distinct().Order().ToList();
            var pieces = positions.Zip(positions.Skip(1), (a, b) => t[a..b]);
            int first = stops.Count == 0 ? -1 : stops.Select(s => t.IndexOf(s, StringComparison.Ordinal)).Where(i => i >= 0).DefaultIfEmpty(-1).Min();
            string expected = first >= 0 ? t[..first] : t;
            return Run(new StopSequenceMatcher(stops), pieces) == expected;
        }).QuickCheckThrowOnFailure();
    }
}
