using System.Text.RegularExpressions;
using QuantServe.Engine.Tokenization.Text;

namespace QuantServe.Engine.Tests.Tokenization;

/// <summary>The hand-written matchers must split exactly as the regular expressions they stand for (on text without
/// characters outside the BMP, where .NET's Regex sees whole code points too).</summary>
public class Gpt2StylePatternTests
{
    public static TheoryData<string> Patterns => new() { Gpt2StylePattern.Gpt2, Gpt2StylePattern.Llama3, Gpt2StylePattern.Qwen2 };

    private static List<(int, int)> Scanner(string pattern, string text)
    {
        var matches = new List<(int Start, int End)>();
        Gpt2StylePattern.ForPattern(pattern)!.FindMatches(text, matches);
        return matches;
    }

    private static List<(int, int)> Reference(Regex regex, string text) =>
        regex.Matches(text).Select(m => (m.Index, m.Index + m.Length)).ToList();

    [Theory]
    [MemberData(nameof(Patterns))]
    public void FindMatches_EvalTextAndSamples_EqualsRegex(string pattern)
    {
        var regex = new Regex(pattern, RegexOptions.CultureInvariant);
        var texts = new[] { "pydoc.txt", "fortunes.txt", "bible.txt" }.Select(ProseTokenizers.EvalText)
            .Concat(TokenizerSamples.Multilingual.Where(s => !s.Any(char.IsSurrogate)));
        foreach (var text in texts) Assert.Equal(Reference(regex, text), Scanner(pattern, text));
    }

    [Theory]
    [MemberData(nameof(Patterns))]
    public void FindMatches_RandomTrickyStrings_EqualsRegex(string pattern)
    {
        var regex = new Regex(pattern, RegexOptions.CultureInvariant);
        // Letters, digits (several scripts), spaces of several kinds, newlines, apostrophes and contraction letters, marks, symbols.
        const string alphabet = "aZsStTrRvVmMlLdDé日ſ0 9٣½²\u00a0\u2003\u3000\u0085\t\r\n\f\v''''!?.,-_(\u0301\u20ac@";
        var random = new Random(12345);
        for (int round = 0; round < 3000; round++)
        {
            var chars = new char[random.Next(0, 24)];
            for (int i = 0; i < chars.Length; i++) chars[i] = alphabet[random.Next(alphabet.Length)];
            string text = new(chars);
            var expected = Reference(regex, text);
            var actual = Scanner(pattern, text);
            Assert.True(expected.SequenceEqual(actual),
                $"text {string.Concat(text.Select(c => $"\\u{(int)c:x4}"))}: regex {string.Join(" ", expected)}, matcher {string.Join(" ", actual)}");
        }
    }

    [Fact]
    public void FindMatches_LettersOutsideBmp_StayInOneWordLikeOniguruma()
    {
        // 𝑥 (U+1D465) is a letter; .NET's Regex would see two surrogates and split "a𝑥b" into three matches.
        Assert.Equal([(0, 4)], Scanner(Gpt2StylePattern.Llama3, "a𝑥b"));
        Assert.Equal([(0, 3)], Scanner(Gpt2StylePattern.Gpt2, " 🦙")); // " ?[^\s\p{L}\p{N}]+" takes the space and the whole emoji
    }
}
