namespace QuantServe.Engine.Models;

/// <summary>How RoPE pairs the dimensions of a head.</summary>
public enum RopeStyle
{
    /// <summary>Adjacent pairs (2i, 2i+1): Meta's original layout, llama2.c and GGUF <c>llama</c> (ggml rope mode 0).</summary>
    Interleaved,

    /// <summary>Rotate-half pairs (i, i + head_dim/2): Hugging Face checkpoints and GGUF NeoX-style architectures (qwen2).</summary>
    Neox,
}

/// <summary>Hyper-parameters of a Llama-family decoder (Llama, Mistral, Qwen2 and the models that share their shape).</summary>
public sealed record ModelConfig
{
    /// <summary>Architecture name as the source file calls it (<c>llama</c>, <c>mistral</c>, <c>qwen2</c>).</summary>
    public string Architecture { get; init; } = "llama";

    /// <summary>Hidden size (embedding width).</summary>
    public required int Dim { get; init; }

    /// <summary>Feed-forward (SwiGLU) width.</summary>
    public required int HiddenDim { get; init; }

    /// <summary>Decoder layers.</summary>
    public required int Layers { get; init; }

    /// <summary>Query heads.</summary>
    public required int Heads { get; init; }

    /// <summary>Key/value heads (grouped-query attention when fewer than <see cref="Heads"/>).</summary>
    public required int KvHeads { get; init; }

    /// <summary>Width of one head (Dim / Heads unless the model says otherwise).</summary>
    public required int HeadDim { get; init; }

    /// <summary>Vocabulary size (rows of the embedding and output matrices).</summary>
    public required int VocabSize { get; init; }

    /// <summary>Maximum context (positions) the model was trained for.</summary>
    public required int ContextLength { get; init; }

    /// <summary>RoPE base frequency θ.</summary>
    public float RopeTheta { get; init; } = 10000f;

    /// <summary>RoPE pairing layout of the q/k projection rows as stored.</summary>
    public RopeStyle Rope { get; init; } = RopeStyle.Interleaved;

    /// <summary>Linear RoPE position scale factor (1 = none); positions are divided by it.</summary>
    public float RopeScale { get; init; } = 1f;

    /// <summary>
    /// Optional per-pair RoPE frequency divisors (head_dim / 2 values, as Llama 3.1's <c>rope_type: llama3</c> and GGUF's
    /// <c>rope_freqs.weight</c> define them): pair i rotates by <c>θ_i = (p / RopeScale) · base^(−2i/head_dim) / factors[i]</c>.
    /// Null means all ones.
    /// </summary>
    public float[]? RopeFrequencyFactors { get; init; }

    /// <summary>RMSNorm ε.</summary>
    public float NormEps { get; init; } = 1e-5f;

    /// <summary>Whether the output head reuses the token embedding matrix.</summary>
    public bool TiedEmbeddings { get; init; }

    /// <summary>Width of the query projection output (Heads × HeadDim).</summary>
    public int QDim => Heads * HeadDim;

    /// <summary>Width of the key/value projection output (KvHeads × HeadDim).</summary>
    public int KvDim => KvHeads * HeadDim;

    /// <summary>Checks internal consistency and throws <see cref="ModelLoadException"/> naming <paramref name="source"/> when a value is absurd.</summary>
    public void Validate(string source)
    {
        static bool Bad(long v, long max) => v <= 0 || v > max;
        if (Bad(Dim, 1 << 17) || Bad(HiddenDim, 1 << 20) || Bad(Layers, 1024) || Bad(Heads, 1024) || Bad(KvHeads, 1024)
            || Bad(HeadDim, 4096) || Bad(VocabSize, 1 << 22) || Bad(ContextLength, 1 << 24))
            throw new ModelLoadException(source, $"implausible hyper-parameters (dim={Dim}, hidden={HiddenDim}, layers={Layers}, heads={Heads}, kv_heads={KvHeads}, head_dim={HeadDim}, vocab={VocabSize}, context={ContextLength})");
        if (Heads % KvHeads != 0)
            throw new ModelLoadException(source, $"heads ({Heads}) is not a multiple of kv_heads ({KvHeads})");
        if (HeadDim % 2 != 0)
            throw new ModelLoadException(source, $"head_dim ({HeadDim}) must be even for RoPE");
        if (!(NormEps > 0 && NormEps < 1)) throw new ModelLoadException(source, $"implausible rms_norm_eps {NormEps}");
        if (!(RopeTheta > 0)) throw new ModelLoadException(source, $"implausible rope_theta {RopeTheta}");
        if (RopeFrequencyFactors is { } factors && (factors.Length != HeadDim / 2 || factors.Any(f => !(f > 0) || float.IsInfinity(f))))
            throw new ModelLoadException(source, $"RoPE frequency factors must be {HeadDim / 2} positive finite values (got {factors.Length})");
    }
}
