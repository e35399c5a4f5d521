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
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _idLookup;
    private readonly Dictionary<string, int> _pieceIds; // piece exactly as stored → first id with it
    private readonly int[] _byteTokens = new int[256];
    private readonly Bpe.AddedTokenMatcher _specials; // control/unknown (parsed on request) and user-defined (always) pieces
    private readonly bool _addBos;
    // When no piece joins a character to a following space, each space-led word encodes on its own (same result), and is cached.
    private readonly bool _splitBeforeSpace;
    private const int MaxCachedWordLength = 64;
    private const int CacheCapacity = 50_000;
    private int _cacheCount;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, int[]>.AlternateLookup<ReadOnlySpan<char>> _cacheLookup;
    [ThreadStatic] private static int[]? t_start, t_length, t_prev, t_next;
    [ThreadStatic] private static PriorityQueue<(int Left, int Right, int Size), (float NegScore, int Left)>? t_queue;

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
        var specials = new List<Bpe.AddedToken>();
        _pieceIds = new Dictionary<string, int>(n, StringComparer.Ordinal);
        for (int i = 0; i < n; i++)
        {
            string piece = _pieces[i];
            var type = types?[i] ?? InferType(i, piece);
            if (type == TokenType.Undefined) type = InferType(i, piece);
            if (type == TokenType.Normal && TryParseByte(piece, out _)) type = TokenType.Byte;
            _types[i] = type;
            _pieceIds.TryAdd(piece, i);
            string text = piece.Replace(SentencePieceSpace, ' ');
            switch (type)
            {
                case TokenType.Byte when TryParseByte(piece, out byte b):
                    _bytes[i] = [b];
                    if (_byteTokens[b] < 0) _byteTokens[b] = i;
                    break;
                case TokenType.Control or TokenType.Unknown:
                    _bytes[i] = [];
                    specials.Add(new Bpe.AddedToken(piece, i, Special: true));
                    break;
                case TokenType.Unused:
                    _bytes[i] = [];
                    break;
                default:
                    _bytes[i] = Encoding.UTF8.GetBytes(text);
                    _ids.TryAdd(text, i);
                    if (type == TokenType.UserDefined) specials.Add(new Bpe.AddedToken(piece, i, Special: false));
                    break;
            }
            _bytesAfterBos[i] = addDummyPrefix && _bytes[i].Length > 0 && _bytes[i][0] == (byte)' ' && type != TokenType.Byte
                ? _bytes[i][1..] : _bytes[i];
        }
        _specials = new Bpe.AddedTokenMatcher(specials);
        _idLookup = _ids.GetAlternateLookup<ReadOnlySpan<char>>();
        _splitBeforeSpace = Bpe.BpeTokenizer.WordMarkStartsPiecesOnly(_ids.Keys, ' ');
        _cacheLookup = _cache.GetAlternateLookup<ReadOnlySpan<char>>();
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

    /// <summary>Control tokens and the unknown token (which, like Hugging Face's special tokens, decode to nothing).</summary>
    public override bool IsSpecial(int token) =>
        (uint)token < (uint)_types.Length && _types[token] is TokenType.Control or TokenType.Unknown;

    /// <inheritdoc />
    public override int TokenId(string piece) =>
        _pieceIds.TryGetValue(piece, out int id) ? id : _ids.GetValueOrDefault(piece.Replace(SentencePieceSpace, ' '), -1);

    /// <inheritdoc />
    public override ReadOnlySpan<byte> TokenBytes(int token, int previousToken)
    {
        if ((uint)token >= (uint)_bytes.Length) return [];
        return previousToken == -1 || previousToken == BosId ? _bytesAfterBos[token] : _bytes[token];
    }

    /// <summary>
    /// Encodes as llama.cpp does for SentencePiece vocabularies: user-defined pieces are split out of the text (control
    /// and unknown pieces too with <paramref name="parseSpecial"/>); every stretch of text at the start or right after
    /// such a piece gets the dummy-prefix space.
    /// </summary>
    public override int[] Encode(string text, bool addBos, bool parseSpecial = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        var output = new List<int>(text.Length / 3 + 2);
        if (addBos && BosId >= 0) output.Add(BosId);
        int pos = 0;
        while (_specials.FindNext(text, pos, parseSpecial, out int start, out int end, out int id))
        {
            EncodeSegment(text.AsSpan(pos, start - pos), output);
            output.Add(id);
            pos = end;
        }
        EncodeSegment(text.AsSpan(pos), output);
        return output.ToArray();
    }

    private void EncodeSegment(ReadOnlySpan<char> segment, List<int> output)
    {
        if (segment.IsEmpty) return;
        // Pieces are keyed with plain spaces, so U+2581 in the input reads as a space, as it does in SentencePiece.
        string text = string.Create(segment.Length + (AddDummyPrefix ? 1 : 0), (AddDummyPrefix, segment.ToString()), static (dst, state) =>
        {
            int at = 0;
            if (state.AddDummyPrefix) dst[at++] = ' ';
            foreach (char c in state.Item2) dst[at++] = c == SentencePieceSpace ? ' ' : c;
        });
        if (!_splitBeforeSpace)
        {
            EncodeWord(text, output);
            return;
        }
        int wordStart = 0;
        for (int i = 1; i < text.Length; i++)
        {
            if (text[i] != ' ' || text[i - 1] == ' ') continue;
            EncodeWordCached(text.AsSpan(wordStart, i - wordStart), output);
            wordStart = i;
        }
        EncodeWordCached(text.AsSpan(wordStart), output);
    }

    private void EncodeWordCached(ReadOnlySpan<char> word, List<int> output)
    {
        bool cacheable = word.Length <= MaxCachedWordLength;
        if (cacheable && _cacheLookup.TryGetValue(word, out var cached))
        {
            output.AddRange(cached);
            return;
        }
        int before = output.Count;
        EncodeWord(word, output);
        if (!cacheable) return;
        // ConcurrentDictionary.Count takes every lock of the table, so the size is tracked here instead.
        if (Interlocked.Increment(ref _cacheCount) > CacheCapacity)
        {
            _cache.Clear();
            Interlocked.Exchange(ref _cacheCount, 0);
        }
        _cacheLookup.TryAdd(word, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(output)[before..].ToArray());
    }

    /// <summary>SentencePiece BPE over one word (spaces already plain).</summary>
    private void EncodeWord(ReadOnlySpan<char> text, List<int> output)
    {

        // Symbols are UTF-16 ranges covering whole code points, linked so merges can join neighbours.
        int capacity = text.Length;
        if (t_start == null || t_start.Length < capacity)
        {
            int size = Math.Max(capacity, 256);
            t_start = new int[size]; t_length = new int[size]; t_prev = new int[size]; t_next = new int[size];
        }
        int[] start = t_start, length = t_length!, prev = t_prev!, next = t_next!;
        int n = 0;
        for (int i = 0; i < text.Length; n++)
        {
            int len = char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]) ? 2 : 1;
            start[n] = i; length[n] = len; prev[n] = n - 1; next[n] = n + 1;
            i += len;
        }
        next[n - 1] = -1;

        var queue = t_queue ??= new();
        queue.Clear();
        for (int i = 0; i + 1 < n; i++) TryAddBigram(text, start, length, i, i + 1, queue);

        while (queue.TryDequeue(out var bigram, out _))
        {
            int left = bigram.Left, right = bigram.Right;
            // Skip stale entries: one side was merged away or grew since the pair was queued.
            if (length[left] == 0 || length[right] == 0 || length[left] + length[right] != bigram.Size) continue;
            length[left] += length[right];
            length[right] = 0;
            next[left] = next[right];
            if (next[right] >= 0) prev[next[right]] = left;
            if (prev[left] >= 0) TryAddBigram(text, start, length, prev[left], left, queue);
            if (next[left] >= 0) TryAddBigram(text, start, length, left, next[left], queue);
        }

        Span<byte> utf8 = stackalloc byte[8];
        for (int i = 0; i >= 0; i = next[i])
        {
            var piece = text.Slice(start[i], length[i]);
            if (_idLookup.TryGetValue(piece, out int id)) { output.Add(id); continue; }
            // A symbol without a piece is a single code point (merges only make pieces): byte fallback.
            int count = Encoding.UTF8.GetBytes(piece, utf8);
            for (int k = 0; k < count; k++)
            {
                int bt = _byteTokens[utf8[k]];
                if (bt >= 0) output.Add(bt);
                else if (UnkId >= 0) output.Add(UnkId);
            }
        }
    }

    private void TryAddBigram(ReadOnlySpan<char> text, int[] start, int[] length, int left, int right,
        PriorityQueue<(int Left, int Right, int Size), (float NegScore, int Left)> queue)
    {
        int size = length[left] + length[right];
        if (_idLookup.TryGetValue(text.Slice(start[left], size), out int id))
            queue.Enqueue((left, right, size), (-_scores[id], left));
    }
}
