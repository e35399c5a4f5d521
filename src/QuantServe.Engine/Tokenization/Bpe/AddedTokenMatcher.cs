using System.Buffers;

namespace QuantServe.Engine.Tokenization.Bpe;

/// <summary>
/// Finds added tokens in text: the leftmost occurrence, longest token first at that position. Candidate positions
/// are found with a vectorized search for the tokens' first characters, so text without them is scanned at memory speed.
/// </summary>
internal sealed class AddedTokenMatcher
{
    private readonly Dictionary<char, AddedToken[]> _byFirstChar;
    private readonly SearchValues<char> _firstChars;

    public AddedTokenMatcher(IEnumerable<AddedToken> tokens)
    {
        _byFirstChar = tokens.Where(t => t.Content.Length > 0)
            .GroupBy(t => t.Content[0])
            .ToDictionary(g => g.Key, g => g.OrderByDescending(t => t.Content.Length).ThenBy(t => t.Id).ToArray());
        _firstChars = SearchValues.Create(_byFirstChar.Keys.ToArray());
        HasNonSpecial = _byFirstChar.Values.Any(g => g.Any(t => !t.Special));
        IsEmpty = _byFirstChar.Count == 0;
    }

    /// <summary>Whether there are no tokens at all.</summary>
    public bool IsEmpty { get; }

    /// <summary>Whether some tokens match even when special tokens are not parsed.</summary>
    public bool HasNonSpecial { get; }

    /// <summary>
    /// Finds the first match at or after <paramref name="from"/>. <paramref name="start"/>..<paramref name="end"/> covers
    /// the token plus the white space its lstrip/rstrip flags swallow (never reaching before <paramref name="from"/>).
    /// </summary>
    public bool FindNext(string text, int from, bool parseSpecial, out int start, out int end, out int id)
    {
        start = end = id = 0;
        if (IsEmpty || !parseSpecial && !HasNonSpecial) return false;
        for (int pos = from; pos < text.Length;)
        {
            int at = text.AsSpan(pos).IndexOfAny(_firstChars);
            if (at < 0) return false;
            pos += at;
            foreach (var token in _byFirstChar[text[pos]])
            {
                if (token.Special && !parseSpecial) continue;
                if (!text.AsSpan(pos).StartsWith(token.Content, StringComparison.Ordinal)) continue;
                int tokenEnd = pos + token.Content.Length;
                if (token.SingleWord && (pos > 0 && IsWordChar(text[pos - 1]) || tokenEnd < text.Length && IsWordChar(text[tokenEnd]))) continue;
                start = pos;
                end = tokenEnd;
                if (token.LStrip) while (start > from && char.IsWhiteSpace(text[start - 1])) start--;
                if (token.RStrip) while (end < text.Length && char.IsWhiteSpace(text[end])) end++;
                id = token.Id;
                return true;
            }
            pos++;
        }
        return false;
    }

    private static bool IsWordChar(char c) => char.IsLetterOrDigit(c) || c == '_';
}
