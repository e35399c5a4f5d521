using System.Buffers;
using System.Text;

namespace QuantServe.Engine.Tokenization.Text;

/// <summary>
/// Hand-written matchers equal to the pre-tokenizer regular expressions of GPT-2, Llama-3 and Qwen2 (leftmost-first
/// alternation with backtracking, as Oniguruma runs them), working on whole code points and in linear time:
/// <list type="bullet">
/// <item>GPT-2: <c>'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+</c></item>
/// <item>Llama-3: <c>(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+</c></item>
/// <item>Qwen2: as Llama-3 with <c>\p{N}</c> in place of <c>\p{N}{1,3}</c>.</item>
/// </list>
/// Every position starts a match of one alternative, so the matches tile the text.
/// </summary>
public sealed class Gpt2StylePattern : SplitPattern
{
    /// <summary>GPT-2's pattern (also the ByteLevel pre-tokenizer's built-in one).</summary>
    public const string Gpt2 = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    /// <summary>Llama-3's pattern.</summary>
    public const string Llama3 = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>Qwen2's pattern.</summary>
    public const string Qwen2 = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    private enum Flavor { Gpt2, Llama3, Qwen2 }

    private enum Kind : byte { Letter, Number, Space, Newline, Other }

    private readonly Flavor _flavor;

    private Gpt2StylePattern(Flavor flavor) => _flavor = flavor;

    /// <summary>The GPT-2 matcher.</summary>
    public static Gpt2StylePattern Gpt2Matcher { get; } = new(Flavor.Gpt2);

    /// <summary>The Llama-3 matcher.</summary>
    public static Gpt2StylePattern Llama3Matcher { get; } = new(Flavor.Llama3);

    /// <summary>The Qwen2 matcher.</summary>
    public static Gpt2StylePattern Qwen2Matcher { get; } = new(Flavor.Qwen2);

    /// <summary>The matcher for exactly one of the three known patterns, else null.</summary>
    public static Gpt2StylePattern? ForPattern(string pattern) => pattern switch
    {
        Gpt2 => Gpt2Matcher,
        Llama3 => Llama3Matcher,
        Qwen2 => Qwen2Matcher,
        _ => null,
    };

    /// <inheritdoc />
    public override void FindMatches(ReadOnlySpan<char> text, List<(int Start, int End)> matches)
    {
        for (int i = 0; i < text.Length;)
        {
            int end = MatchAt(text, i);
            matches.Add((i, end));
            i = end;
        }
    }

    /// <summary>The end of the match that starts at <paramref name="i"/> (always greater than <paramref name="i"/>).</summary>
    private int MatchAt(ReadOnlySpan<char> s, int i)
    {
        bool gpt2 = _flavor == Flavor.Gpt2;
        int n = s.Length;
        if (s[i] == '\'' && Contraction(s, i + 1, ignoreCase: !gpt2) is int c and > 0) return i + 1 + c;

        var k0 = KindAt(s, i, out int w0);
        // Letters, with an optional one-character prefix.
        if (k0 == Kind.Letter) return SkipRun(s, i, Kind.Letter);
        if (i + w0 < n && KindAt(s, i + w0, out _) == Kind.Letter
            && (gpt2 ? s[i] == ' ' : k0 is Kind.Space or Kind.Other))
            return SkipRun(s, i + w0, Kind.Letter);

        // Numbers.
        if (gpt2)
        {
            if (k0 == Kind.Number) return SkipRun(s, i, Kind.Number);
            if (s[i] == ' ' && i + 1 < n && KindAt(s, i + 1, out _) == Kind.Number) return SkipRun(s, i + 1, Kind.Number);
        }
        else if (k0 == Kind.Number)
        {
            int limit = _flavor == Flavor.Llama3 ? 3 : 1, j = i;
            for (int count = 0; count < limit && j < n && KindAt(s, j, out int w) == Kind.Number; count++) j += w;
            return j;
        }

        // Punctuation and symbols, with an optional leading space (and, for Llama-3/Qwen2, trailing newlines).
        int p = s[i] == ' ' && i + 1 < n && KindAt(s, i + 1, out _) == Kind.Other ? i + 1 : i;
        if (KindAt(s, p, out _) == Kind.Other)
        {
            int j = SkipRun(s, p, Kind.Other);
            if (!gpt2) while (j < n && s[j] is '\r' or '\n') j++;
            return j;
        }

        // White space (k0 is Space or Newline here).
        int runEnd = i;
        while (runEnd < n && KindAt(s, runEnd, out _) is Kind.Space or Kind.Newline) runEnd++;
        if (!gpt2)
        {
            // \s*[\r\n]+ : greedy \s* backs off to the last newline of the run.
            for (int q = runEnd - 1; q >= i; q--)
                if (s[q] is '\r' or '\n') return q + 1;
        }
        // \s+(?!\S) backs off one character when the run is followed by a non-space; \s+ takes the run otherwise.
        if (runEnd == n) return runEnd;
        return runEnd - i >= 2 ? runEnd - 1 : runEnd;
    }

    private static readonly string[] Contractions = ["s", "t", "re", "ve", "m", "ll", "d"];

    /// <summary>Length of the contraction suffix at <paramref name="at"/> (after the apostrophe), or 0.</summary>
    private static int Contraction(ReadOnlySpan<char> s, int at, bool ignoreCase)
    {
        foreach (var suffix in Contractions)
        {
            if (at + suffix.Length > s.Length) continue;
            bool ok = true;
            for (int k = 0; k < suffix.Length && ok; k++)
            {
                char ch = s[at + k];
                ok = ch == suffix[k] || ignoreCase && char.ToLowerInvariant(ch) == suffix[k];
            }
            if (ok) return suffix.Length;
        }
        return 0;
    }

    private static int SkipRun(ReadOnlySpan<char> s, int i, Kind kind)
    {
        int j = i;
        while (j < s.Length && KindAt(s, j, out int w) == kind) j += w;
        return j;
    }

    private static Kind KindAt(ReadOnlySpan<char> s, int i, out int width)
    {
        char c = s[i];
        if (c < 0x80)
        {
            width = 1;
            return AsciiKinds[c];
        }
        if (Rune.DecodeFromUtf16(s[i..], out var rune, out width) != OperationStatus.Done)
        {
            width = 1;
            return Kind.Other; // a lone surrogate: not a letter, digit or space
        }
        if (Rune.IsLetter(rune)) return Kind.Letter;
        if (Rune.IsNumber(rune)) return Kind.Number;
        if (Rune.IsWhiteSpace(rune)) return Kind.Space;
        return Kind.Other;
    }

    private static readonly Kind[] AsciiKinds = BuildAsciiKinds();

    private static Kind[] BuildAsciiKinds()
    {
        var kinds = new Kind[128];
        for (int c = 0; c < 128; c++)
        {
            kinds[c] = char.IsAsciiLetter((char)c) ? Kind.Letter
                : char.IsAsciiDigit((char)c) ? Kind.Number
                : c is '\r' or '\n' ? Kind.Newline
                : char.IsWhiteSpace((char)c) ? Kind.Space
                : Kind.Other;
        }
        return kinds;
    }
}
