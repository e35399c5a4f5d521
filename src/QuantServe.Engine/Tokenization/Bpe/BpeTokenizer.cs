using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tokenization.Text;

namespace QuantServe.Engine.Tokenization.Bpe;

/// <summary>
/// Merge-ranked BPE as Hugging Face tokenizers runs it: added tokens are split out of the text first; each stretch
/// between them is normalized and pre-tokenized into words; each word becomes initial symbols (characters or bytes,
/// per subclass) that are merged pairwise, lowest merge rank first. Encoded words are cached (bounded), and every
/// token's decoded bytes are computed once from the decoder chain. Thread-safe.
/// </summary>
public abstract class BpeTokenizer : Tokenizer
{
    private const int MaxCachedWordLength = 64;
    private const int CacheCapacity = 50_000;
    private int _cacheCount;

    private readonly string[] _pieces;
    private readonly bool[] _special;
    private readonly Dictionary<string, int> _tokenIds;
    private readonly AddedTokenMatcher _added;
    private readonly TokenBytesTable _decoded;
    private readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int[]>.AlternateLookup<ReadOnlySpan<char>> _cacheLookup;
    private readonly bool _splitBeforeWordMark;
    [ThreadStatic] private static List<TextPiece>? t_words;

    /// <summary>Builds the tokenizer; a merge naming a piece missing from the vocabulary, or an unknown
    /// <see cref="BpeDefinition.UnkToken"/>, is a <see cref="ModelLoadException"/> about <see cref="BpeDefinition.Source"/>.</summary>
    protected BpeTokenizer(BpeDefinition definition)
    {
        Definition = definition;
        Pipeline = definition.Pipeline;
        int size = definition.Pieces.Count;
        foreach (var t in definition.AddedTokens)
        {
            if (t.Id < 0) throw new ModelLoadException(definition.Source, $"added token '{t.Content}' has negative id {t.Id}");
            size = Math.Max(size, t.Id + 1);
        }
        _pieces = new string[size];
        _special = new bool[size];
        Vocab = new Dictionary<string, int>(definition.Pieces.Count, StringComparer.Ordinal);
        for (int id = 0; id < definition.Pieces.Count; id++)
        {
            _pieces[id] = definition.Pieces[id] ?? "";
            if (definition.Pieces[id] is { } piece) Vocab.TryAdd(piece, id);
        }
        for (int id = definition.Pieces.Count; id < size; id++) _pieces[id] = "";
        VocabLookup = Vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        _tokenIds = new Dictionary<string, int>(Vocab, StringComparer.Ordinal);
        foreach (var t in definition.AddedTokens)
        {
            _pieces[t.Id] = t.Content;
            _special[t.Id] = t.Special;
            _tokenIds[t.Content] = t.Id;
        }
        _added = new AddedTokenMatcher(definition.AddedTokens);

        var pairs = new Dictionary<long, (int, int)>(definition.Merges.Count, BpeMerges.KeyComparer.Instance);
        for (int rank = 0; rank < definition.Merges.Count; rank++)
        {
            var (left, right) = definition.Merges[rank];
            int l = MergePiece(rank, left, right, left), r = MergePiece(rank, left, right, right);
            int merged = MergePiece(rank, left, right, left + right);
            pairs.TryAdd(BpeMerges.Key(l, r), (rank, merged));
        }
        Merges = new BpeMerges(pairs);

        // The unknown token is normally a model piece; some files list it only among the added tokens.
        UnkId = definition.UnkToken == null ? -1
            : _tokenIds.TryGetValue(definition.UnkToken, out int unk) ? unk
            : throw new ModelLoadException(definition.Source, $"unk_token '{definition.UnkToken}' is not in the vocabulary");
        BosId = definition.BosId < size ? definition.BosId : -1;
        EosId = definition.EosId < size ? definition.EosId : -1;
        AddBosByDefault = definition.AddBos && BosId >= 0;
        _decoded = new TokenBytesTable(_pieces, definition.Decoder, id => _special[id]);
        _splitBeforeWordMark = WordMarkStartsPiecesOnly(Vocab.Keys);
        _cacheLookup = _cache.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    /// <summary>
    /// Whether U+2581 only ever appears in pieces at their start or in runs from their start (as in SentencePiece
    /// vocabularies): then no merge can join a character to a following U+2581, and a long word (a Llama-2 tokenizer
    /// has no pre-tokenizer, so a whole line is one word) can be encoded as independent sub-words starting at each
    /// U+2581 that follows another character, with the same result and the sub-words cached.
    /// </summary>
    internal static bool WordMarkStartsPiecesOnly(IEnumerable<string> pieces, char mark = '\u2581')
    {
        bool any = false;
        foreach (var piece in pieces)
        {
            int at = piece.IndexOf(mark);
            if (at < 0) continue;
            any = true;
            for (int i = Math.Max(at, 1); i < piece.Length; i++)
                if (piece[i] == mark && piece[i - 1] != mark) return false;
        }
        return any;
    }

    private int MergePiece(int rank, string left, string right, string piece) =>
        Vocab.TryGetValue(piece, out int id) ? id
            : throw new ModelLoadException(Definition.Source, $"merge {rank} ('{left}' + '{right}') uses '{piece}', which is not in the vocabulary");

    /// <summary>What the tokenizer was built from.</summary>
    public BpeDefinition Definition { get; }

    /// <summary>Normalizers and pre-tokenizers.</summary>
    public TextPipeline Pipeline { get; }

    /// <summary>The model vocabulary (piece → id), without added tokens.</summary>
    private protected Dictionary<string, int> Vocab { get; }

    /// <summary><see cref="Vocab"/> looked up by span.</summary>
    private protected Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> VocabLookup { get; }

    /// <summary>The merge table.</summary>
    private protected BpeMerges Merges { get; }

    /// <summary>The unknown token's id, or -1.</summary>
    public int UnkId { get; }

    /// <summary>Number of merges.</summary>
    public int MergeCount => Merges.Count;

    /// <inheritdoc />
    public override int VocabSize => _pieces.Length;

    /// <inheritdoc />
    public override int BosId { get; }

    /// <inheritdoc />
    public override int EosId { get; }

    /// <inheritdoc />
    public override bool AddBosByDefault { get; }

    /// <inheritdoc />
    public override string TokenText(int token) => (uint)token < (uint)_pieces.Length ? _pieces[token] : "";

    /// <inheritdoc />
    public override bool IsSpecial(int token) => (uint)token < (uint)_special.Length && _special[token];

    /// <inheritdoc />
    public override int TokenId(string piece) => _tokenIds.GetValueOrDefault(piece, -1);

    /// <inheritdoc />
    public override ReadOnlySpan<byte> TokenBytes(int token, int previousToken)
    {
        if ((uint)token >= (uint)_pieces.Length) return [];
        return _decoded.Get(token, first: previousToken == -1 || previousToken == BosId);
    }

    /// <inheritdoc />
    public override int[] Encode(string text, bool addBos, bool parseSpecial = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        var output = new List<int>(text.Length / 3 + 2);
        if (addBos && BosId >= 0) output.Add(BosId);
        var words = t_words ??= new();
        int pos = 0;
        while (_added.FindNext(text, pos, parseSpecial, out int start, out int end, out int id))
        {
            EncodeText(text, pos, start - pos, output, words);
            output.Add(id);
            pos = end;
        }
        EncodeText(text, pos, text.Length - pos, output, words);
        return output.ToArray();
    }

    private void EncodeText(string text, int start, int length, List<int> output, List<TextPiece> words)
    {
        if (length == 0) return;
        words.Clear();
        Pipeline.Run(text, start, length, start == 0, words);
        foreach (var word in words)
        {
            var span = word.Span;
            if (!_splitBeforeWordMark) { EncodeWordCached(span, output); continue; }
            int start0 = 0;
            for (int i = 1; i < span.Length; i++)
            {
                if (span[i] != '\u2581' || span[i - 1] == '\u2581') continue;
                EncodeWordCached(span[start0..i], output);
                start0 = i;
            }
            EncodeWordCached(span[start0..], output);
        }
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
        _cacheLookup.TryAdd(word, CollectionsMarshal.AsSpan(output)[before..].ToArray());
    }

    /// <summary>Encodes one pre-tokenized word into <paramref name="output"/>.</summary>
    private protected abstract void EncodeWord(ReadOnlySpan<char> word, List<int> output);
}
