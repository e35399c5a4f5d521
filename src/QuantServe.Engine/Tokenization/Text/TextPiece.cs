namespace QuantServe.Engine.Tokenization.Text;

/// <summary>
/// A slice of text on its way to the BPE model: <see cref="Text"/>[<see cref="Start"/>..+<see cref="Length"/>].
/// <see cref="AtStart"/> says the slice begins at offset 0 of the caller's original input (Metaspace's
/// <c>prepend_scheme: first</c> depends on it).
/// </summary>
public readonly record struct TextPiece(string Text, int Start, int Length, bool AtStart)
{
    /// <summary>The characters of the piece.</summary>
    public ReadOnlySpan<char> Span => Text.AsSpan(Start, Length);

    /// <summary>A piece covering a whole string.</summary>
    public static TextPiece Of(string text, bool atStart) => new(text, 0, text.Length, atStart);

    /// <summary>The sub-piece [<paramref name="offset"/>..+<paramref name="length"/>] relative to this piece.</summary>
    public TextPiece Slice(int offset, int length) => new(Text, Start + offset, length, AtStart && offset == 0);
}
