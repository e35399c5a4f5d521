using QuantServe.Engine.Formats.Gguf;
using QuantServe.Engine.Tokenization;
using QuantServe.Engine.Tokenization.Bpe;

namespace QuantServe.Engine.Quantization.Gguf;

/// <summary>
/// Writes a tokenizer as GGUF <c>tokenizer.ggml.*</c> metadata for sources that carry none (Hugging Face folders,
/// llama2.c checkpoints). SentencePiece vocabularies become <c>tokenizer.ggml.model = llama</c> with their own scores and
/// token types. A metaspace BPE vocabulary (tokenizer.json of a Llama-2 style model) becomes <c>llama</c> too: llama.cpp's
/// SentencePiece tokenizer merges the adjacent pair whose merged piece scores highest, so a piece produced by merge rank
/// <c>r</c> scores <c>−r</c>, which reproduces BPE's lowest-rank-first order; pieces no merge produces score 0.
/// </summary>
public static class TokenizerMetadata
{
    private const char SentencePieceSpace = '\u2581';

    /// <summary>Adds the vocabulary of <paramref name="tokenizer"/> to <paramref name="m"/>; throws
    /// <see cref="NotSupportedException"/> for a tokenizer kind GGUF's llama vocabulary cannot express.</summary>
    public static void Write(GgufMetadata m, Tokenizer tokenizer)
    {
        switch (tokenizer)
        {
            case SentencePieceBpeTokenizer sp:
                WriteSentencePiece(m, sp);
                break;
            case MetaspaceBpeTokenizer bpe:
                WriteMetaspace(m, bpe);
                break;
            default:
                throw new NotSupportedException($"cannot write a {tokenizer.GetType().Name} vocabulary as GGUF metadata (SentencePiece and metaspace BPE vocabularies are supported)");
        }
    }

    private static void WriteSentencePiece(GgufMetadata m, SentencePieceBpeTokenizer sp)
    {
        int n = sp.VocabSize;
        var tokens = new string[n];
        var scores = new float[n];
        var types = new int[n];
        for (int i = 0; i < n; i++)
        {
            tokens[i] = sp.TokenText(i).Replace(' ', SentencePieceSpace);
            scores[i] = sp.Score(i);
            types[i] = (int)sp.Type(i);
        }
        Common(m, tokens, scores, types, sp.BosId, sp.EosId, sp.UnkId, sp.AddBosByDefault);
        m.Set("tokenizer.ggml.add_space_prefix", GgufValue.FromBool(sp.AddDummyPrefix));
    }

    private static void WriteMetaspace(GgufMetadata m, MetaspaceBpeTokenizer bpe)
    {
        int n = bpe.VocabSize;
        var tokens = new string[n];
        var scores = new float[n];
        var types = new int[n];
        var ids = new Dictionary<string, int>(n, StringComparer.Ordinal);
        for (int i = 0; i < n; i++)
        {
            tokens[i] = bpe.TokenText(i);
            ids.TryAdd(tokens[i], i);
            types[i] = (int)(bpe.IsSpecial(i) ? TokenType.Control
                : i == bpe.UnkId ? TokenType.Unknown
                : bpe.Definition.ByteFallback && IsByteToken(tokens[i]) ? TokenType.Byte
                : TokenType.Normal);
        }
        var merges = bpe.Definition.Merges;
        var scored = new bool[n];
        for (int rank = 0; rank < merges.Count; rank++)
        {
            if (!ids.TryGetValue(merges[rank].Left + merges[rank].Right, out int id) || scored[id]) continue;
            scored[id] = true;
            scores[id] = -rank;
        }
        if (bpe.UnkId >= 0) types[bpe.UnkId] = (int)TokenType.Unknown;
        Common(m, tokens, scores, types, bpe.BosId, bpe.EosId, bpe.UnkId, bpe.AddBosByDefault);
    }

    private static bool IsByteToken(string piece) =>
        piece.Length == 6 && piece.StartsWith("<0x", StringComparison.Ordinal) && piece[5] == '>' && Uri.IsHexDigit(piece[3]) && Uri.IsHexDigit(piece[4]);

    private static void Common(GgufMetadata m, string[] tokens, float[] scores, int[] types, int bos, int eos, int unk, bool addBos)
    {
        m.Set("tokenizer.ggml.model", GgufValue.FromString("llama"));
        m.Set("tokenizer.ggml.tokens", GgufValue.FromArray(tokens));
        m.Set("tokenizer.ggml.scores", GgufValue.FromArray(scores));
        m.Set("tokenizer.ggml.token_type", GgufValue.FromArray(types));
        if (bos >= 0) m.Set("tokenizer.ggml.bos_token_id", GgufValue.FromUInt32((uint)bos));
        if (eos >= 0) m.Set("tokenizer.ggml.eos_token_id", GgufValue.FromUInt32((uint)eos));
        if (unk >= 0) m.Set("tokenizer.ggml.unknown_token_id", GgufValue.FromUInt32((uint)unk));
        m.Set("tokenizer.ggml.add_bos_token", GgufValue.FromBool(addBos));
    }
}
