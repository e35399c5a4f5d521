using QuantServe.Engine.Models;

namespace QuantServe.Engine.Formats.Gguf;

/// <summary>
/// Reads the hyper-parameters of a Llama-family GGUF (<c>general.architecture</c> = llama, mistral or qwen2) from
/// its <c>{arch}.*</c> metadata: embedding_length, feed_forward_length, block_count, attention.head_count,
/// attention.head_count_kv, attention.key_length (head_dim; default embedding_length / head_count), context_length,
/// rope.freq_base, rope.scaling.type/factor (linear only), attention.layer_norm_rms_epsilon and vocab_size
/// (default: rows of <c>token_embd.weight</c>). RoPE layout: llama/mistral files store q/k rows permuted for ggml's
/// adjacent-pair mode (<see cref="RopeStyle.Interleaved"/>); qwen2 uses NeoX rotate-half (<see cref="RopeStyle.Neox"/>).
/// </summary>
public static class GgufModelConfig
{
    /// <summary>Architectures this reader (and the engine) runs.</summary>
    public static readonly IReadOnlyList<string> Architectures = ["llama", "mistral", "qwen2"];

    /// <summary>Builds and validates the <see cref="ModelConfig"/> of <paramref name="file"/>.</summary>
    public static ModelConfig Read(GgufFile file)
    {
        var m = file.Metadata;
        string arch = m.GetStringOrNull("general.architecture")
            ?? throw new ModelLoadException(file.Path, "metadata 'general.architecture' is missing: not a model GGUF");
        if (!Architectures.Contains(arch))
            throw new ModelLoadException(file.Path, $"architecture '{arch}' is not supported (QuantServe runs {string.Join(", ", Architectures)})");

        int dim = m.GetInt32($"{arch}.embedding_length", 1);
        int hidden = m.GetInt32($"{arch}.feed_forward_length", 1);
        int layers = m.GetInt32($"{arch}.block_count", 1);
        int heads = m.GetInt32($"{arch}.attention.head_count", 1);
        int kvHeads = m.GetInt32OrNull($"{arch}.attention.head_count_kv", 1) ?? heads;
        int? keyLength = m.GetInt32OrNull($"{arch}.attention.key_length", 1);
        if (keyLength is null && dim % heads != 0)
            throw new ModelLoadException(file.Path, $"embedding_length {dim} is not a multiple of head_count {heads} and attention.key_length is not given");
        int headDim = keyLength ?? dim / heads;
        int? valueLength = m.GetInt32OrNull($"{arch}.attention.value_length", 1);
        if (valueLength is { } vl && vl != headDim)
            throw new ModelLoadException(file.Path, $"attention.value_length {vl} differs from key_length {headDim}; QuantServe needs equal q/k/v head widths");
        int? ropeDims = m.GetInt32OrNull($"{arch}.rope.dimension_count", 1);
        if (ropeDims is { } rd && rd != headDim)
            throw new ModelLoadException(file.Path, $"rope.dimension_count {rd} differs from head_dim {headDim}; partial rotary embeddings are not supported");

        int vocab = m.GetInt32OrNull($"{arch}.vocab_size", 1)
            ?? (file.FindTensor("token_embd.weight") is { Dimensions.Count: 2 } emb && emb.Dimensions[1] <= int.MaxValue
                ? (int)emb.Dimensions[1]
                : m.GetStringArrayOrNull("tokenizer.ggml.tokens")?.Length
                  ?? throw new ModelLoadException(file.Path, "cannot tell the vocabulary size: no vocab_size, token_embd.weight or tokenizer.ggml.tokens"));

        var config = new ModelConfig
        {
            Architecture = arch,
            Dim = dim,
            HiddenDim = hidden,
            Layers = layers,
            Heads = heads,
            KvHeads = kvHeads,
            HeadDim = headDim,
            VocabSize = vocab,
            ContextLength = m.GetInt32($"{arch}.context_length", 1),
            RopeTheta = (float)(m.GetFloatOrNull($"{arch}.rope.freq_base") ?? 10000.0),
            Rope = arch == "qwen2" ? RopeStyle.Neox : RopeStyle.Interleaved,
            RopeScale = RopeScale(file, arch),
            NormEps = (float)(m.GetFloatOrNull($"{arch}.attention.layer_norm_rms_epsilon") ?? 1e-5),
            TiedEmbeddings = file.FindTensor("output.weight") is null,
        };
        config.Validate(file.Path);
        return config;
    }

    private static float RopeScale(GgufFile file, string arch)
    {
        var m = file.Metadata;
        string? type = m.GetStringOrNull($"{arch}.rope.scaling.type");
        double? factor = m.GetFloatOrNull($"{arch}.rope.scaling.factor");
        double? legacyLinear = m.GetFloatOrNull($"{arch}.rope.scale_linear");
        switch (type)
        {
            case null:
                return Factor(legacyLinear ?? 1.0);
            case "none":
                return 1f;
            case "linear":
                return Factor(factor ?? legacyLinear ?? 1.0);
            default:
                throw new ModelLoadException(file.Path, $"RoPE scaling type '{type}' is not supported (only linear)");
        }

        float Factor(double f) => f is > 0 and < 1e6 ? (float)f
            : throw new ModelLoadException(file.Path, $"implausible RoPE scaling factor {f}");
    }
}
