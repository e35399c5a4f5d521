using QuantServe.Engine.Models;
using QuantServe.Engine.Tokenization;
using QuantServe.Engine.Tokenization.Bpe;

namespace QuantServe.Engine.Formats.Gguf;

/// <summary>
/// Builds the tokenizer stored in a GGUF file's <c>tokenizer.ggml.*</c> metadata and reads the ids that end generation.
/// </summary>
public static class GgufVocabulary
{
    /// <summary>
    /// The file's tokenizer. <c>tokenizer.ggml.model = llama</c>: SentencePiece BPE from <c>tokens</c>, <c>scores</c>
    /// (default 0), <c>token_type</c>, <c>bos/eos/unknown_token_id</c> (defaults 1, 2, 0), <c>add_bos_token</c> and
    /// <c>add_space_prefix</c> (both default true). <c>tokenizer.ggml.model = gpt2</c>: byte-level BPE from <c>tokens</c>,
    /// <c>token_type</c>, <c>merges</c> (required) and the pre-tokenizer named by <c>pre</c>; <c>add_bos_token</c> defaults
    /// to true for the Llama-3 pre-tokenizers (as llama.cpp does) and false otherwise.
    /// </summary>
    public static Tokenizer CreateTokenizer(GgufFile file)
    {
        var m = file.Metadata;
        string model = m.GetStringOrNull("tokenizer.ggml.model")
            ?? throw new ModelLoadException(file.Path, "metadata 'tokenizer.ggml.model' is missing: the file carries no vocabulary");
        var tokens = m.GetStringArrayOrNull("tokenizer.ggml.tokens")
            ?? throw new ModelLoadException(file.Path, "metadata 'tokenizer.ggml.tokens' is missing");
        if (tokens.Length == 0) throw new ModelLoadException(file.Path, "tokenizer.ggml.tokens is empty");
        switch (model)
        {
            case "llama":
                return SentencePiece(file, tokens);
            case "gpt2":
                return ByteLevel(file, tokens);
            default:
                throw new ModelLoadException(file.Path, $"tokenizer model '{model}' is not supported (QuantServe reads 'llama' SentencePiece and 'gpt2' byte-level BPE vocabularies)");
        }
    }

    private static SentencePieceBpeTokenizer SentencePiece(GgufFile file, string[] tokens)
    {
        var m = file.Metadata;
        int n = tokens.Length;
        var scores = m.GetFloatArrayOrNull("tokenizer.ggml.scores") ?? new float[n];
        if (scores.Length != n)
            throw new ModelLoadException(file.Path, $"tokenizer.ggml.scores has {scores.Length} entries for {n} tokens");
        var types = TokenTypes(file, n);
        int bos = TokenId(file, "tokenizer.ggml.bos_token_id", n) ?? 1;
        int eos = TokenId(file, "tokenizer.ggml.eos_token_id", n) ?? 2;
        int unk = TokenId(file, "tokenizer.ggml.unknown_token_id", n) ?? 0;
        bool addBos = m.GetBoolOrNull("tokenizer.ggml.add_bos_token") ?? true;
        bool addSpacePrefix = m.GetBoolOrNull("tokenizer.ggml.add_space_prefix") ?? true;
        return new SentencePieceBpeTokenizer(tokens, scores, types, bos, eos, unk, addBos, addSpacePrefix);
    }

    private static readonly string[] Llama3PreTokenizers = ["llama-bpe", "llama3", "llama-v3", "falcon3", "pixtral"];

    private static ByteLevelBpeTokenizer ByteLevel(GgufFile file, string[] tokens)
    {
        var m = file.Metadata;
        int n = tokens.Length;
        var merges = m.GetStringArrayOrNull("tokenizer.ggml.merges")
            ?? throw new ModelLoadException(file.Path, "metadata 'tokenizer.ggml.merges' is missing: a gpt2 vocabulary needs its merges");
        string? pre = m.GetStringOrNull("tokenizer.ggml.pre");
        int bos = TokenId(file, "tokenizer.ggml.bos_token_id", n) ?? -1;
        int eos = TokenId(file, "tokenizer.ggml.eos_token_id", n) ?? -1;
        bool addBos = m.GetBoolOrNull("tokenizer.ggml.add_bos_token") ?? Llama3PreTokenizers.Contains(pre);
        return ByteLevelBpeTokenizer.FromGguf(file.Path, tokens, TokenTypes(file, n), merges, pre, bos, eos, addBos);
    }

    private static TokenType[]? TokenTypes(GgufFile file, int n)
    {
        var raw = file.Metadata.GetIntegerArrayOrNull("tokenizer.ggml.token_type");
        if (raw is null) return null;
        if (raw.Length != n)
            throw new ModelLoadException(file.Path, $"tokenizer.ggml.token_type has {raw.Length} entries for {n} tokens");
        var types = new TokenType[n];
        for (int i = 0; i < n; i++)
        {
            if (raw[i] is < (long)TokenType.Undefined or > (long)TokenType.Byte)
                throw new ModelLoadException(file.Path, $"tokenizer.ggml.token_type[{i}] = {raw[i]} is not a token type (0..6)");
            types[i] = (TokenType)raw[i];
        }
        return types;
    }

    /// <summary>Token ids that end generation: <c>eos_token_id</c>, <c>eot_token_id</c> and <c>eom_token_id</c>, each when present and inside the vocabulary.</summary>
    public static IReadOnlyList<int> StopTokenIds(GgufFile file, Tokenizer tokenizer)
    {
        var ids = new List<int>();
        if (tokenizer.EosId >= 0) ids.Add(tokenizer.EosId);
        foreach (var key in new[] { "tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id" })
            if (TokenId(file, key, tokenizer.VocabSize) is { } id && id >= 0 && !ids.Contains(id)) ids.Add(id);
        return ids;
    }

    private static int? TokenId(GgufFile file, string key, int vocab)
    {
        long? id = file.Metadata.GetIntegerOrNull(key);
        if (id is null) return null;
        // Converters write -1 (or uint32 0xFFFFFFFF) for "this model has no such token".
        if (id is -1 or 0xFFFFFFFF) return -1;
        if (id < 0 || id >= vocab)
            throw new ModelLoadException(file.Path, $"metadata '{key}' = {id} lies outside the vocabulary of {vocab} tokens");
        return (int)id;
    }
}
