using System.Globalization;
using System.Text;

namespace QuantServe.Engine.Tokenization;

/// <summary>
/// SentencePiece-style BPE driven by piece scores, with byte fallback: the tokenizer of Llama-2-family GGUF
/// files (<c>tokenizer.ggml.model = llama</c>) and of llama2.c's <c>tok*.bin</c> files.
/// Encoding splits the (space-prefixed) text into characters, then repeatedly merges the adjacent pair whose
/// concatenation is a piece with the highest score (leftmost on ties); a symbol left without a piece becomes
/// its UTF-8 bytes as <c>&lt;0xXX&gt;</c> tokens.
/// </summary>
public sealed class SentencePieceBpeTokenizer : Tokenizer
{
    private const char SentencePieceSpace = '\u2581';
    private readonly string[] _pieces;
    private readonly float[] _scores;
    private readonly TokenType[] _types;
    private readonly byte[][] _bytes;         // decoded bytes of each token
    private readonly byte[][] _bytesAfterBos; // the same, with the dummy-prefix space dropped
    private readonly Dictionary<string, int> _ids;  // text (with plain spaces) → id, for normal/user-defined pieces
    private readonly int[] _byteTokens = new int[256];
    private readonly (string Text, int Id)[] _specials; // longest first, for parseSpecial
    private readonly bool _addBos;

    /// <summary>
    /// Builds the tokenizer from a vocabulary. Pieces may use U+2581 or a plain space for the word boundary.
    /// </summary>
    public SentencePieceBpeTokenizer(IReadOnlyList<string> pieces, IReadOnlyList<float> scores, IReadOnlyList<TokenType>? types,
        int bosId, int eosId, int unkId, bool addBos = true, bool addDummyPrefix = true)
    {
        int n = pieces.Count;
        if (scores.Count != n) throw new ArgumentException($"vocabulary has {n} pieces but {scores.Count} scores");
        if (types != null && types.Count != n) throw new ArgumentException($"vocabulary has {n} pieces but {types.Count} token types");
        _pieces = pieces.ToArray();
        _scores = scores.ToArray();
        _types = new TokenType[n];
        _bytes = new byte[n][];
        _bytesAfterBos = new byte[n][];
        _ids = new Dictionary<string, int>(n, StringComparer.Ordinal);
        Array.Fill(_byteTokens, -1);
        BosId = bosId < n ? bosId : -1;
        EosId = eosId < n ? eosId : -1;
        UnkId = unkId < n ? unkId : -1;
        AddDummyPrefix = addDummyPrefix;
        _addBos = addBos && BosId >= 0;
        var specials = new List<(string, int)>();
        for (int i = 0; i < n; i++)
        {
            string piece = _pieces[i];
            var type = types?[i] ?? InferType(i, piece);
            if (type == TokenType.Undefined) type = InferType(i, piece);
            if (type == TokenType.Normal && TryParseByte(piece, out _)) type = TokenType.Byte;
            _types[i] = type;
            string text = piece.Replace(SentencePieceSpace, ' ');
            switch (type)
            {
                case TokenType.Byte when TryParseByte(piece, out byte b):
                    _bytes[i] = [b];
                    if (_byteTokens[b] < 0) _byteTokens[b] = i;
                    break;
                case TokenType.Control:
                    _bytes[i] = [];
                    specials.Add((piece, i));
                    break;
                case TokenType.Unused:
                    _bytes[i] = [];
                    break;
                case TokenType.Unknown:
                    _bytes[i] = Encoding.UTF8.GetBytes(piece);
                    break;
                default:
                    _bytes[i] = Encoding.UTF8.GetBytes(text);
                    _ids.TryAdd(text, i);
                    if (type == TokenType.UserDefined) specials.Add((piece, i));
                    break;
            }
            _bytesAfterBos[i] = addDummyPrefix && _bytes[i].Length > 0 && _bytes[i][0] == (byte)' ' && type != TokenType.Byte
                ? _bytes[i][1..] : _bytes[i];
        }
        _specials = specials.Where(s => s.Item1.Length > 0).OrderByDescending(s => s.Item1.Length).ToArray();
    }

    private TokenType InferType(int id, string piece)
    {
        if (id == UnkId) return TokenType.Unknown;
        if (id == BosId || id == EosId) return TokenType.Control;
        return TryParseByte(piece, out _) ? TokenType.Byte : TokenType.Normal;
    }

    private static bool TryParseByte(string piece, out byte value)
    {
        value = 0;
        return piece.Length == 6 && piece.StartsWith("<0x", StringComparison.Ordinal) && piece[5] == '>'
            && byte.TryParse(piece.AsSpan(3, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out value);
    }

    /// <inheritdoc />
    public override int VocabSize => _pieces.Length;
    /// <inheritdoc />
    public override int BosId { get; }
    /// <inheritdoc />
    public override int EosId { get; }
    /// <summary>The unknown token's id, or -1.</summary>
    public int UnkId { get; }
    /// <summary>Whether a space is prepended to the text before encoding (SentencePiece's add_dummy_prefix).</summary>
    public bool AddDummyPrefix { get; }
    /// <inheritdoc />
    public override bool AddBosByDefault => _addBos;

    /// <summary>The score of a piece (higher merges first).</summary>
    public float Score(int token) => _scores[token];

    /// <summary>The type of a piece.</summary>
    public TokenType Type(int token) => _types[token];

    /// <inheritdoc />
    public override string TokenText(int token) => (uint)token < (uint)_pieces.Length ? _pieces[token] : "";

    /// <inheritdoc />
    public override bool IsSpecial(int token) => (uint)token < (uint)_types.Length && _types[token] == TokenType.Control;

    /// <inheritdoc />
    public override int TokenId(string piece)
    {
        for (int i = 0; i < _pieces.Length; i++) if (_pieces[i] == piece) return i;
        return _ids.GetValueOrDefault(piece.Replace(SentencePieceSpace, ' '), -1);
    }

    /// <inheritdoc />
    public override ReadOnlySpan<byte> TokenBytes(int token, int previousToken)
    {
        if ((uint)token >= (uint)_bytes.Length) return [];
        return previousToken < 0 || previousToken == BosId ? _bytesAfterBos[token] : _bytes[token];
    }

    /// <inheritdoc />
    public override int[] Encode(string text, bool addBos, bool parseSpecial = false)
    {
        var output = new List<int>(text.Length / 2 + 2);
        if (addBos && BosId >= 0) output.Add(BosId);
        if (!parseSpecial || _specials.Length == 0)
        {
            EncodeSegment(text, AddDummyPrefix, output);
            return output.ToArray();
        }
        int start = 0;
        bool first = true;
        for (int pos = 0; pos < text.Length;)
        {
            int id = MatchSpecial(text, pos, out int length);
            if (id < 0) { pos++; continue; }
            EncodeSegment(text[start..pos], first && AddDummyPrefix, output);
            output.Add(id);
            pos += length;
            start = pos;
            first = false;
        }
        EncodeSegment(text[start..], first && AddDummyPrefix, output);
        return output.ToArray();
    }

    private int MatchSpecial(string text, int pos, out int length)
    {
        foreach (var (s, id) in _specials)
            if (string.CompareOrdinal(text, pos, s, 0, s.Length) == 0) { length = s.Length; return id; }
        length = 0;
        return -1;
    }

    private void EncodeSegment(string segment, bool dummyPrefix, List<int> output)
    {
        if (segment.Length == 0) return;
        string text = dummyPrefix ? " " + segment : segment;
        text = text.Replace(SentencePieceSpace, ' ');

        // Symbols are UTF-16 ranges covering whole code points; merges join neighbours in a linked list.
        var symbols = new List<Symbol>(text.Length);
        for (int i = 0; i < text.Length;)
        {
            int len = char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]) ? 2 : 1;
            symbols.Add(new Symbol { Start = i, Length = len, Prev = symbols.Count - 1, Next = symbols.Count + 1 });
            i += len;
        }
        symbols[^1] = symbols[^1] with { Next = -1 };

        var queue = new PriorityQueue<Bigram, (float NegScore, int Left)>();
        for (int i = 0; i + 1 < symbols.Count; i++) TryAddBigram(text, symbols, i, i + 1, queue);

        while (queue.TryDequeue(out var bigram, out _))
        {
            var left = symbols[bigram.Left];
            var right = symbols[bigram.Right];
            // Skip stale entries: one side was merged away or changed length since the pair was queued.
            if (left.Length == 0 || right.Length == 0 || left.Length + right.Length != bigram.Size || left.Next != bigram.Right) continue;
            symbols[bigram.Left] = left with { Length = left.Length + right.Length, Next = right.Next };
            symbols[bigram.Right] = right with { Length = 0 };
            if (right.Next >= 0) symbols[right.Next] = symbols[right.Next] with { Prev = bigram.Left };
            if (left.Prev >= 0) TryAddBigram(text, symbols, left.Prev, bigram.Left, queue);
            if (right.Next >= 0) TryAddBigram(text, symbols, bigram.Left, right.Next, queue);
        }

        for (int i = 0; i >= 0 && i < symbols.Count; i = symbols[i].Next)
        {
            var s = symbols[i];
            if (_ids.TryGetValue(text.Substring(s.Start, s.Length), out int id)) { output.Add(id); continue; }
            foreach (byte b in Encoding.UTF8.GetBytes(text.Substring(s.Start, s.Length)))
            {
                int bt = _byteTokens[b];
                if (bt >= 0) output.Add(bt);
                else if (UnkId >= 0) output.Add(UnkId);
            }
        }
    }

    private void TryAddBigram(string text, List<Symbol> symbols, int left, int right, PriorityQueue<Bigram, (float, int)> queue)
    {
        var l = symbols[left];
        var r = symbols[right];
        int size = l.Length + r.Length;
        if (_ids.TryGetValue(text.Substring(l.Start, size), out int id))
            queue.Enqueue(new Bigram(left, right, size), (-_scores[id], left));
    }

    private record struct Symbol(int Start, int Length, int Prev, int Next);

    private readonly record struct Bigram(int Left, int Right, int Size);
}
