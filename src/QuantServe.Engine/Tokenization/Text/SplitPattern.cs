using System.Text.RegularExpressions;

namespace QuantServe.Engine.Tokenization.Text;

/// <summary>Finds the non-overlapping matches of a split pattern, left to right.</summary>
public abstract class SplitPattern
{
    /// <summary>Appends the (start, end) offsets of every match in <paramref name="text"/> to <paramref name="matches"/>.</summary>
    public abstract void FindMatches(ReadOnlySpan<char> text, List<(int Start, int End)> matches);

    /// <summary>
    /// The matcher for a regular expression from a tokenizer file. GPT-2's, Llama-3's and Qwen2's patterns get
    /// <see cref="Gpt2StylePattern"/>, which classifies whole code points as Oniguruma/Rust do (.NET's Regex
    /// sees a character outside the BMP as two surrogates, neither of them a letter); anything else uses .NET's Regex.
    /// </summary>
    public static SplitPattern ForRegex(string pattern) =>
        Gpt2StylePattern.ForPattern(pattern) ?? (SplitPattern)new RegexSplitPattern(
            new Regex(pattern, RegexOptions.CultureInvariant | RegexOptions.Compiled));
}

/// <summary>Matches a literal string.</summary>
public sealed class LiteralSplitPattern(string literal) : SplitPattern
{
    /// <inheritdoc />
    public override void FindMatches(ReadOnlySpan<char> text, List<(int Start, int End)> matches)
    {
        if (literal.Length == 0) return;
        for (int pos = 0; pos <= text.Length - literal.Length;)
        {
            int at = text[pos..].IndexOf(literal.AsSpan(), StringComparison.Ordinal);
            if (at < 0) break;
            matches.Add((pos + at, pos + at + literal.Length));
            pos += at + literal.Length;
        }
    }
}

/// <summary>Matches a .NET regular expression.</summary>
public sealed class RegexSplitPattern(Regex regex) : SplitPattern
{
    /// <inheritdoc />
    public override void FindMatches(ReadOnlySpan<char> text, List<(int Start, int End)> matches)
    {
        foreach (var m in regex.EnumerateMatches(text))
            if (m.Length > 0) matches.Add((m.Index, m.Index + m.Length));
    }
}
