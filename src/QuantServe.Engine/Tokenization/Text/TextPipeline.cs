namespace QuantServe.Engine.Tokenization.Text;

/// <summary>
/// Normalizers then pre-tokenizers, run on each stretch of input text between added tokens; yields the words BPE
/// encodes one at a time. Immutable and safe to share between threads.
/// </summary>
public sealed class TextPipeline
{
    private readonly Normalizer[] _normalizers;
    private readonly PreTokenizer[] _preTokenizers;
    [ThreadStatic] private static List<TextPiece>? t_current;
    [ThreadStatic] private static List<TextPiece>? t_spare;

    /// <summary>Creates a pipeline; both lists may be empty (the whole text is then one word).</summary>
    public TextPipeline(IEnumerable<Normalizer> normalizers, IEnumerable<PreTokenizer> preTokenizers)
    {
        _normalizers = normalizers.ToArray();
        _preTokenizers = preTokenizers.ToArray();
    }

    /// <summary>The normalizers, in order.</summary>
    public IReadOnlyList<Normalizer> Normalizers => _normalizers;

    /// <summary>The pre-tokenizers, in order.</summary>
    public IReadOnlyList<PreTokenizer> PreTokenizers => _preTokenizers;

    /// <summary>
    /// Appends the words of <paramref name="text"/>[<paramref name="start"/>..+<paramref name="length"/>] to
    /// <paramref name="words"/>. <paramref name="atStart"/> says the text begins the caller's input.
    /// </summary>
    public void Run(string text, int start, int length, bool atStart, List<TextPiece> words)
    {
        if (length == 0) return;
        TextPiece piece = new(text, start, length, atStart);
        if (_normalizers.Length > 0)
        {
            string s = piece.Span.ToString();
            foreach (var n in _normalizers) s = n.Apply(s);
            if (s.Length == 0) return;
            piece = TextPiece.Of(s, atStart);
        }
        if (_preTokenizers.Length == 0)
        {
            words.Add(piece);
            return;
        }
        // Alternate between the two lists; the last step writes straight into the caller's list.
        var current = t_current ??= new();
        var spare = t_spare ??= new();
        current.Clear();
        current.Add(piece);
        for (int step = 0; step < _preTokenizers.Length; step++)
        {
            bool last = step == _preTokenizers.Length - 1;
            var target = last ? words : spare;
            if (!last) target.Clear();
            foreach (var p in current) _preTokenizers[step].Split(p, target);
            if (!last) (current, spare) = (spare, current);
        }
    }
}
