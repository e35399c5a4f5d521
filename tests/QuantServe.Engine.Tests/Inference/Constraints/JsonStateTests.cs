using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using FsCheck;
using FsCheck.Fluent;
using QuantServe.Engine.Inference.Constraints;

namespace QuantServe.Engine.Tests.Inference.Constraints;

public class JsonStateTests
{
    private static readonly Gen<string> Text =
        Gen.ArrayOf(Gen.Elements("a", "Z", " ", "\"", "\\", "/", "\n", "\t", "\u0001", "\u001f", "é", "中", "😀", "<", "&", "'", "\u2028", "\u007f", "\uffff", "0"))
            .Select(parts => string.Concat(parts.Take(10)));

    private static readonly Gen<JsonNode?> Leaf = Gen.OneOf(
        Gen.Constant<JsonNode?>(null),
        Gen.Elements(true, false).Select(b => (JsonNode?)JsonValue.Create(b)),
        Gen.Choose(int.MinValue, int.MaxValue).Select(i => (JsonNode?)JsonValue.Create((long)i * 1009)),
        Gen.Two(Gen.Choose(int.MinValue, int.MaxValue))
            .Select(p => BitConverter.Int64BitsToDouble(((long)p.Item1 << 32) | (uint)p.Item2))
            .Where(double.IsFinite).Select(d => (JsonNode?)JsonValue.Create(d)),
        Gen.Choose(-100000, 100000).Select(i => (JsonNode?)JsonValue.Create(i / 64.0)),
        Text.Select(s => (JsonNode?)JsonValue.Create(s)));

    private static Gen<JsonNode?> Value(int depth) => depth <= 0 ? Leaf
        : Gen.OneOf(Leaf, Leaf, Array(depth - 1).Select(a => (JsonNode?)a), Object(depth - 1).Select(o => (JsonNode?)o));

    private static Gen<JsonArray> Array(int depth) =>
        Gen.ArrayOf(Value(depth)).Select(items => new JsonArray(items.Take(5).ToArray()));

    private static Gen<JsonObject> Object(int depth) =>
        (from keys in Gen.ArrayOf(Text) from values in Gen.ArrayOf(Value(depth)) select (keys, values)).Select(p =>
        {
            var o = new JsonObject();
            int n = Math.Min(5, Math.Min(p.Item1.Length, p.Item2.Length));
            for (int i = 0; i < n; i++) o[p.Item1[i] + "#" + i] = p.Item2[i];
            return o;
        });

    private static readonly JsonSerializerOptions[] Styles =
    [
        new() { WriteIndented = false },
        new() { WriteIndented = true },
        new() { WriteIndented = false, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping },
        new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping },
    ];

    private static readonly Gen<byte[]> Document =
        from tree in Object(4)
        from style in Gen.Choose(0, Styles.Length - 1)
        select JsonSerializer.SerializeToUtf8Bytes(tree, Styles[style]);

    private static (bool Accepted, bool Complete, int RejectedAt) Feed(ReadOnlySpan<byte> doc, JsonState s)
    {
        for (int i = 0; i < doc.Length; i++)
            if (!s.TryAccept(doc[i])) return (false, false, i);
        return (true, s.IsComplete, -1);
    }

    private static bool ParsesWithSystemTextJson(byte[] doc)
    {
        try
        {
            using var _ = JsonDocument.Parse(doc);
            return true;
        }
        catch (JsonException) { return false; }
    }

    [Fact]
    public void TryAccept_SerializedRandomTrees_AcceptedByteByByteAndCompleteOnlyAtEnd()
    {
        Prop.ForAll(Document.ToArbitrary(), doc =>
        {
            var s = JsonState.Start();
            for (int i = 0; i < doc.Length; i++)
            {
                if (s.IsComplete || !s.TryAccept(doc[i])) return false;
            }
            return s.IsComplete && s.BytesToComplete == 0;
        }).QuickCheckThrowOnFailure();
    }

    private static readonly byte[] MutationBytes = "{}[]\":,\\ \n0123456789aeEfu.-+tnlrsx"u8.ToArray().Concat(new byte[] { 0x01, 0x80, 0xC3, 0xE2, 0xFF }).ToArray();

    [Fact]
    public void TryAccept_RandomMutations_AgreesWithSystemTextJson()
    {
        var mutated = (from d in Document
                       from k in Gen.Choose(0, 3)
                       from p in Gen.Choose(0, int.MaxValue)
                       from x in Gen.Elements(MutationBytes)
                       select (d, k, p, x)).Select(m =>
        {
            var (doc, kind, pos, b) = m;
            var list = doc.ToList();
            int at = pos % (list.Count + 1);
            switch (kind)
            {
                case 0: if (at < list.Count) list.RemoveAt(at); break;
                case 1: list.Insert(at, b); break;
                case 2: if (at < list.Count) list[at] = b; break;
                default: if (at < list.Count) list.Insert(at, list[at]); break;
            }
            return list.ToArray();
        });
        Prop.ForAll(mutated.ToArbitrary(), doc =>
        {
            var (accepted, complete, _) = Feed(doc, JsonState.Start());
            bool ours = accepted && complete;
            bool stj = ParsesWithSystemTextJson(doc);
            string shown = $"stj={stj} ours={ours} doc={Convert.ToHexString(doc)}";
            if (!stj) return (!ours).Label(shown);
            // STJ also accepts top-level non-objects, trailing whitespace, lone \u surrogates and (in property names)
            // invalid UTF-8, all of which we reject on purpose.
            bool comparable = System.Text.Unicode.Utf8.IsValid(doc) && doc.Length > 0 && doc[0] == (byte)'{' && doc[^1] == (byte)'}' && !Encoding.Latin1.GetString(doc).Contains("\\u");
            return (!comparable || ours).Label(shown);
        }).QuickCheckThrowOnFailure();
    }

    [Theory]
    [InlineData("{}")]
    [InlineData("{\"a\":1}")]
    [InlineData(" {\"a\" : [1, -2.5e+3, 0, 0.0, -0E-0, true, false, null, \"x\"], \"b\": {}}")]
    [InlineData("{\"s\":\"esc \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\ud83d\\ude00\"}")]
    [InlineData("{\"utf8\":\"é中😀\"}")]
    [InlineData("{\"nested\":[[[{\"a\":[]}]]]}")]
    public void TryAccept_ValidObject_AcceptedAndComplete(string json)
    {
        var (accepted, complete, at) = Feed(Encoding.UTF8.GetBytes(json), JsonState.Start());
        Assert.True(accepted, $"rejected at byte {at}");
        Assert.True(complete);
    }

    [Theory]
    [InlineData("[1]", 0)]
    [InlineData("\"x\"", 0)]
    [InlineData("{\"a\":01}", 6)]
    [InlineData("{\"a\":1.}", 7)]
    [InlineData("{\"a\":-}", 6)]
    [InlineData("{\"a\":.5}", 5)]
    [InlineData("{\"a\":1e}", 7)]
    [InlineData("{\"a\":tru}", 8)]
    [InlineData("{\"a\":True}", 5)]
    [InlineData("{\"a\" 1}", 5)]
    [InlineData("{\"a\":1,}", 7)]
    [InlineData("{\"a\":[1,]}", 8)]
    [InlineData("{\"a\":1]", 6)]
    [InlineData("{a:1}", 1)]
    [InlineData("{\"a\":\"\\x\"}", 7)]
    [InlineData("{\"a\":\"\\udc00\"}", 9)]
    [InlineData("{\"a\":\"\\ud800x\"}", 12)]
    [InlineData("{\"a\":\"\\ud800\\u0041\"}", 14)]
    [InlineData("{\"a\":\"tab\there\"}", 9)]
    [InlineData("{}{}", 2)]
    [InlineData("{} ", 2)]
    public void TryAccept_InvalidJson_RejectedAtExpectedByte(string json, int expectedIndex)
    {
        var (accepted, _, at) = Feed(Encoding.UTF8.GetBytes(json), JsonState.Start());
        Assert.False(accepted);
        Assert.Equal(expectedIndex, at);
    }

    [Theory]
    [InlineData(new byte[] { 0xC0, 0x80 })]       // overlong
    [InlineData(new byte[] { 0xE0, 0x80, 0x80 })] // overlong 3-byte
    [InlineData(new byte[] { 0xED, 0xA0, 0x80 })] // UTF-16 surrogate encoded in UTF-8
    [InlineData(new byte[] { 0xF4, 0x90, 0x80, 0x80 })] // above U+10FFFF
    [InlineData(new byte[] { 0x80 })]             // stray continuation
    [InlineData(new byte[] { 0xC3, 0x41 })]       // truncated sequence
    public void TryAccept_InvalidUtf8InString_Rejected(byte[] bad)
    {
        var doc = "{\"a\":\""u8.ToArray().Concat(bad).Concat("\"}"u8.ToArray()).ToArray();
        Assert.False(Feed(doc, JsonState.Start()).Accepted);
    }

    [Fact]
    public void TryAccept_WhitespaceRunOverLimit_Rejected()
    {
        Assert.True(Feed("{  \"a\"  :  1  }"u8, JsonState.Start(maxWhitespaceRun: 2)).Complete);
        Assert.False(Feed("{   \"a\":1}"u8, JsonState.Start(maxWhitespaceRun: 2)).Accepted);
        Assert.True(Feed("{\"a\":\"     \"}"u8, JsonState.Start(maxWhitespaceRun: 2)).Complete); // inside strings: unlimited
    }

    [Fact]
    public void TryAccept_LeadingWhitespaceDisabled_DocumentMustStartWithValue()
    {
        Assert.True(Feed(" {}"u8, JsonState.Start()).Complete);
        Assert.False(Feed(" {}"u8, JsonState.Start(leadingWhitespace: false)).Accepted);
        Assert.True(Feed("{ \"a\": 1 }"u8, JsonState.Start(maxWhitespaceRun: 1, leadingWhitespace: false)).Complete);
    }

    [Fact]
    public void TryAccept_NestingOverLimit_Rejected()
    {
        Assert.True(Feed("{\"a\":[[1]]}"u8, JsonState.Start(maxDepth: 3)).Complete);
        Assert.False(Feed("{\"a\":[[[1]]]}"u8, JsonState.Start(maxDepth: 3)).Accepted);
    }

    [Fact]
    public void TryAccept_DeepNestingAcross64Levels_TracksContainerKinds()
    {
        var sb = new StringBuilder("{\"a\":");
        for (int i = 0; i < 100; i++) sb.Append(i % 3 == 0 ? "[" : "{\"k\":");
        sb.Append('1');
        for (int i = 99; i >= 0; i--) sb.Append(i % 3 == 0 ? "]" : "}");
        sb.Append('}');
        var (accepted, complete, _) = Feed(Encoding.UTF8.GetBytes(sb.ToString()), JsonState.Start());
        Assert.True(accepted && complete);
        // Closing with the wrong bracket kind at depth > 64 is caught.
        string wrong = sb.ToString();
        int lastBracket = wrong.LastIndexOf(']');
        wrong = wrong[..lastBracket] + "}" + wrong[(lastBracket + 1)..];
        Assert.False(Feed(Encoding.UTF8.GetBytes(wrong), JsonState.Start()).Accepted);
    }

    [Theory]
    [InlineData("", 2)]
    [InlineData("{", 1)]
    [InlineData("{\"", 4)]
    [InlineData("{\"ab\"", 3)]
    [InlineData("{\"ab\":", 2)]
    [InlineData("{\"ab\":[", 2)]
    [InlineData("{\"ab\":[\"x", 3)]
    [InlineData("{\"ab\":[\"x\\u12", 5)]
    [InlineData("{\"ab\":[\"x\\ud8", 11)]
    [InlineData("{\"ab\":[tr", 4)]
    [InlineData("{\"ab\":[-", 3)]
    [InlineData("{\"ab\":[1.5e", 3)]
    [InlineData("{\"ab\":[12", 2)]
    public void BytesToComplete_Prefix_MatchesShortestCompletion(string prefix, int expected)
    {
        var s = JsonState.Start();
        Assert.True(s.TryAccept(Encoding.UTF8.GetBytes(prefix)));
        Assert.Equal(expected, s.BytesToComplete);
    }
}
