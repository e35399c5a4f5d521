using System.Buffers;
using System.Text;

namespace QuantServe.Engine.Tokenization.Bpe;

/// <summary>
/// Character-level BPE with byte fallback, the Hugging Face form of SentencePiece vocabularies (Llama-2, Mistral,
/// TinyLlama): text is normalized so spaces are U+2581 (a <c>Prepend</c>+<c>Replace</c> normalizer or a
/// <c>Metaspace</c> pre-tokenizer), each code point starts as its own piece, or as <c>&lt;0xHH&gt;</c> byte pieces when
/// it has none (<c>byte_fallback</c>), or as the unknown token (consecutive ones fused with <c>fuse_unk</c>); pieces then
/// merge by rank. The decoder turns U+2581 back into spaces and drops the one space the normalizer added at the start
/// of a sequence (at the very start, or right after BOS), so a streamed continuation keeps its own leading space.
/// </summary>
public sealed class MetaspaceBpeTokenizer : BpeTokenizer
{
    private readonly Dictionary<int, int> _codePointIds = new();
    private readonly int[] _byteIds = new int[256];
    private readonly bool _byteFallback;
    private readonly bool _fuseUnk;
    private readonly bool _ignoreMerges;
    [ThreadStatic] private static int[]? t_symbols;

    /// <summary>Builds the tokenizer (see <see cref="BpeTokenizer"/> for the errors it reports).</summary>
    public MetaspaceBpeTokenizer(BpeDefinition definition) : base(definition)
    {
        Array.Fill(_byteIds, -1);
        for (int id = 0; id < definition.Pieces.Count; id++)
        {
            string? piece = definition.Pieces[id];
            if (piece == null || Vocab[piece] != id) continue;
            if (piece.Length is 1 or 2 && Rune.DecodeFromUtf16(piece, out var rune, out int used) == OperationStatus.Done && used == piece.Length)
                _codePointIds.TryAdd(rune.Value, id);
            if (ByteFallbackDecoder.TryParseByteToken(Encoding.ASCII.GetBytes(piece), out byte b) && piece[3..5].ToUpperInvariant() == piece[3..5])
                if (_byteIds[b] < 0) _byteIds[b] = id;
        }
        _byteFallback = definition.ByteFallback;
        _fuseUnk = definition.FuseUnk;
        _ignoreMerges = definition.IgnoreMerges;
    }

    private protected override void EncodeWord(ReadOnlySpan<char> word, List<int> output)
    {
        if (_ignoreMerges && VocabLookup.TryGetValue(word, out int whole))
        {
            output.Add(whole);
            return;
        }
        int capacity = word.Length * 3;
        if (t_symbols == null || t_symbols.Length < capacity) t_symbols = new int[Math.Max(capacity, 256)];
        var symbols = t_symbols;
        int n = 0;
        bool unkPending = false;
        Span<byte> utf8 = stackalloc byte[4];
        for (int i = 0; i < word.Length;)
        {
            if (Rune.DecodeFromUtf16(word[i..], out var rune, out int width) != OperationStatus.Done) rune = Rune.ReplacementChar;
            i += width;
            if (_codePointIds.TryGetValue(rune.Value, out int id))
            {
                FlushUnk();
                symbols[n++] = id;
                continue;
            }
            if (_byteFallback)
            {
                int count = rune.EncodeToUtf8(utf8);
                bool all = true;
                for (int k = 0; k < count; k++) all &= _byteIds[utf8[k]] >= 0;
                if (all)
                {
                    FlushUnk();
                    for (int k = 0; k < count; k++) symbols[n++] = _byteIds[utf8[k]];
                    continue;
                }
            }
            if (UnkId < 0) continue; // no way to represent it: dropped, as there is nothing to emit
            if (unkPending && !_fuseUnk) FlushUnk();
            unkPending = true;
        }
        FlushUnk();
        int merged = Merges.Apply(symbols.AsSpan(0, n));
        for (int k = 0; k < merged; k++) output.Add(symbols[k]);

        void FlushUnk()
        {
            if (!unkPending) return;
            symbols[n++] = UnkId;
            unkPending = false;
        }
    }
}
