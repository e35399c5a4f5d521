namespace QuantServe.Engine.Tokenization.Text;

/// <summary>Splits (and possibly rewrites) a piece of text into smaller pieces that BPE encodes independently
/// (Hugging Face tokenizers' <c>pre_tokenizer</c>).</summary>
public abstract class PreTokenizer
{
    /// <summary>Appends the pieces of <paramref name="piece"/> to <paramref name="output"/>; empty pieces are dropped.</summary>
    public abstract void Split(TextPiece piece, List<TextPiece> output);
}

/// <summary>What a split does with the pattern's matches (the delimiters).</summary>
public enum SplitBehavior
{
    /// <summary>Delimiters are dropped.</summary>
    Removed,
    /// <summary>Delimiters become pieces of their own.</summary>
    Isolated,
    /// <summary>A delimiter joins the piece before it.</summary>
    MergedWithPrevious,
    /// <summary>A delimiter joins the piece after it.</summary>
    MergedWithNext,
    /// <summary>Adjacent delimiters join into one piece, as do adjacent non-delimiters.</summary>
    Contiguous,
}

/// <summary><c>Split</c>: splits on a pattern with a <see cref="SplitBehavior"/>; with <c>invert</c> the non-matching
/// parts are the delimiters.</summary>
public sealed class SplitPreTokenizer(SplitPattern pattern, SplitBehavior behavior, bool invert) : PreTokenizer
{
    [ThreadStatic] private static List<(int Start, int End)>? t_matches;
    [ThreadStatic] private static List<(int Start, int End, bool Delimiter)>? t_parts;

    /// <inheritdoc />
    public override void Split(TextPiece piece, List<TextPiece> output)
    {
        var matches = t_matches ??= new();
        var parts = t_parts ??= new();
        matches.Clear();
        parts.Clear();
        pattern.FindMatches(piece.Span, matches);
        int prev = 0;
        foreach (var (start, end) in matches)
        {
            if (start > prev) parts.Add((prev, start, invert));
            parts.Add((start, end, !invert));
            prev = end;
        }
        if (prev < piece.Length) parts.Add((prev, piece.Length, invert));
        Apply(piece, parts, behavior, output);
    }

    /// <summary>Combines alternating delimiter / non-delimiter parts per <paramref name="behavior"/> into <paramref name="output"/>.</summary>
    internal static void Apply(TextPiece piece, List<(int Start, int End, bool Delimiter)> parts, SplitBehavior behavior, List<TextPiece> output)
    {
        switch (behavior)
        {
            case SplitBehavior.Removed:
                foreach (var (s, e, d) in parts) if (!d) Emit(s, e);
                break;
            case SplitBehavior.Isolated:
                foreach (var (s, e, _) in parts) Emit(s, e);
                break;
            case SplitBehavior.MergedWithPrevious:
            {
                int curStart = -1, curEnd = -1;
                bool previousDelimiter = false;
                foreach (var (s, e, d) in parts)
                {
                    if (d && !previousDelimiter && curStart >= 0) curEnd = e;
                    else { Flush(); curStart = s; curEnd = e; }
                    previousDelimiter = d;
                }
                Flush();
                void Flush() { if (curStart >= 0) Emit(curStart, curEnd); }
                break;
            }
            case SplitBehavior.MergedWithNext:
            {
                // Built right to left, as a delimiter attaches to what follows it.
                var spans = new List<(int, int)>();
                bool previousDelimiter = false;
                for (int k = parts.Count - 1; k >= 0; k--)
                {
                    var (s, e, d) = parts[k];
                    if (d && !previousDelimiter && spans.Count > 0) spans[^1] = (s, spans[^1].Item2);
                    else spans.Add((s, e));
                    previousDelimiter = d;
                }
                for (int k = spans.Count - 1; k >= 0; k--) Emit(spans[k].Item1, spans[k].Item2);
                break;
            }
            case SplitBehavior.Contiguous:
            {
                int curStart = -1, curEnd = -1;
                bool previousDelimiter = false;
                foreach (var (s, e, d) in parts)
                {
                    if (d == previousDelimiter && curStart >= 0) curEnd = e;
                    else { if (curStart >= 0) Emit(curStart, curEnd); curStart = s; curEnd = e; }
                    previousDelimiter = d;
                }
                if (curStart >= 0) Emit(curStart, curEnd);
                break;
            }
        }
        void Emit(int s, int e) { if (e > s) output.Add(piece.Slice(s, e - s)); }
    }
}

/// <summary>When Metaspace puts its replacement character in front of a piece.</summary>
public enum PrependScheme
{
    /// <summary>Every piece that does not already start with it.</summary>
    Always,
    /// <summary>Only the piece at the very start of the input.</summary>
    First,
    /// <summary>Never.</summary>
    Never,
}

/// <summary><c>Metaspace</c>: spaces become <see cref="Replacement"/> (U+2581), which is prepended per
/// <see cref="Scheme"/>; with <c>split</c>, each replacement character starts a new piece.</summary>
public sealed class MetaspacePreTokenizer(char replacement, PrependScheme scheme, bool split) : PreTokenizer
{
    /// <summary>The character standing for a space.</summary>
    public char Replacement { get; } = replacement;

    /// <summary>When the replacement is prepended.</summary>
    public PrependScheme Scheme { get; } = scheme;

    /// <inheritdoc />
    public override void Split(TextPiece piece, List<TextPiece> output)
    {
        string text = piece.Span.ToString().Replace(' ', Replacement);
        bool prepend = Scheme == PrependScheme.Always || Scheme == PrependScheme.First && piece.AtStart;
        if (prepend && (text.Length == 0 || text[0] != Replacement)) text = Replacement + text;
        if (text.Length == 0) return;
        var whole = TextPiece.Of(text, piece.AtStart);
        if (!split) { output.Add(whole); return; }
        int start = 0;
        for (int i = 1; i < text.Length; i++)
        {
            if (text[i] != Replacement) continue;
            output.Add(whole.Slice(start, i - start));
            start = i;
        }
        output.Add(whole.Slice(start, text.Length - start));
    }
}

/// <summary>
/// <c>ByteLevel</c>: optionally prepends a space, optionally splits with GPT-2's pattern. The byte-to-character
/// mapping itself is done by <see cref="Bpe.ByteLevelBpeTokenizer"/> on each piece's UTF-8, so this must be the last step.
/// </summary>
public sealed class ByteLevelPreTokenizer(bool addPrefixSpace, bool useRegex) : PreTokenizer
{
    private static readonly SplitPreTokenizer Gpt2Split = new(Gpt2StylePattern.Gpt2Matcher, SplitBehavior.Isolated, invert: false);

    /// <inheritdoc />
    public override void Split(TextPiece piece, List<TextPiece> output)
    {
        if (addPrefixSpace && (piece.Length == 0 || piece.Span[0] != ' '))
            piece = TextPiece.Of(" " + piece.Span.ToString(), piece.AtStart);
        if (piece.Length == 0) return;
        if (useRegex) Gpt2Split.Split(piece, output);
        else output.Add(piece);
    }
}

/// <summary><c>Digits</c>: numeric characters are split off, one by one or as runs.</summary>
public sealed class DigitsPreTokenizer(bool individualDigits) : PreTokenizer
{
    [ThreadStatic] private static List<(int Start, int End, bool Delimiter)>? t_parts;

    /// <inheritdoc />
    public override void Split(TextPiece piece, List<TextPiece> output)
    {
        var parts = t_parts ??= new();
        parts.Clear();
        var span = piece.Span;
        int start = 0;
        bool? inDigits = null;
        for (int i = 0; i < span.Length; i++)
        {
            bool digit = char.IsDigit(span[i]) || char.IsNumber(span[i]);
            if (inDigits == null) { inDigits = digit; continue; }
            if (digit == inDigits && !(digit && individualDigits)) continue;
            parts.Add((start, i, inDigits.Value));
            start = i;
            inDigits = digit;
        }
        if (span.Length > 0) parts.Add((start, span.Length, inDigits!.Value));
        SplitPreTokenizer.Apply(piece, parts, SplitBehavior.Isolated, output);
    }
}

/// <summary><c>WhitespaceSplit</c>: splits on white space, dropping it.</summary>
public sealed class WhitespaceSplitPreTokenizer : PreTokenizer
{
    /// <inheritdoc />
    public override void Split(TextPiece piece, List<TextPiece> output)
    {
        var span = piece.Span;
        int start = -1;
        for (int i = 0; i <= span.Length; i++)
        {
            bool space = i == span.Length || char.IsWhiteSpace(span[i]);
            if (space && start >= 0) { output.Add(piece.Slice(start, i - start)); start = -1; }
            else if (!space && start < 0) start = i;
        }
    }
}
