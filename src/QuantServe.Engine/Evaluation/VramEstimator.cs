using QuantServe.Engine.Models;

namespace QuantServe.Engine.Evaluation;

/// <summary>Element type of the key/value cache in a VRAM estimate.</summary>
public enum KvCacheType
{
    /// <summary>2 bytes per element.</summary>
    F16,
    /// <summary>4 bytes per element.</summary>
    F32,
    /// <summary>ggml Q8_0 blocks: 34 bytes per 32 elements (a row is padded up to whole blocks).</summary>
    Q8_0,
}

/// <summary>A VRAM estimate, all in bytes.</summary>
/// <param name="WeightsBytes">Weights as stored.</param>
/// <param name="KvCacheBytes">Key/value cache for <paramref name="Context"/> positions × <paramref name="Batch"/> sequences.</param>
/// <param name="ActivationsBytes">Peak scratch of one forward piece (see <see cref="VramEstimator"/>).</param>
/// <param name="OverheadBytes">Runtime overhead (see <see cref="VramEstimator"/>).</param>
/// <param name="TotalBytes">Sum of the four.</param>
/// <param name="Context">Positions per sequence.</param>
/// <param name="Batch">Sequences.</param>
/// <param name="KvCacheType">Cache element type.</param>
/// <param name="Fits">The common GPU sizes (GB, from <see cref="VramEstimator.GpuSizesGb"/>) the total fits in.</param>
public sealed record VramEstimate(long WeightsBytes, long KvCacheBytes, long ActivationsBytes, long OverheadBytes, long TotalBytes,
    int Context, int Batch, KvCacheType KvCacheType, IReadOnlyList<int> Fits);

/// <summary>
/// Estimates the accelerator memory a model needs to serve. A pure function of the configuration and the stored weight
/// bytes:
/// <list type="bullet">
/// <item>weights = bytes as stored (no dequantized copy).</item>
/// <item>kv_cache = 2 (K and V) × layers × batch × context × rowBytes(kv_heads × head_dim), where rowBytes is
/// 2·n for f16, 4·n for f32 and 34·⌈n/32⌉ for q8_0 — i.e. exactly 2 × layers × kv_heads × head_dim × context × batch ×
/// element size for the float types.</item>
/// <item>activations = 4 bytes × chunk × (3·dim + 2·qdim + 2·kvdim + 2·hidden + vocab), with chunk =
/// min(batch × context, <see cref="PrefillChunk"/>): the float32 scratch of one forward piece (residual and normed copies,
/// query and attention output, key+value, gate+up, logits). Continuous batching puts every sequence's prompt chunk or
/// decode token into the same piece, so the scratch is shared by the batch rather than multiplied by it, and both
/// backends compute attention a query row at a time (the GPU in shared memory) without a heads × chunk × context score
/// matrix. Measured on an H100 against the resident CUDA backend, the older per-sequence formula over-estimated batch 16
/// by half (1,664 MB vs 1,084 MB allocated for TinyLlama-1.1B Q4_K_M).</item>
/// <item>overhead = <see cref="FixedOverheadBytes"/> (runtime context, kernels, allocator) + 5% of weights + kv + activations
/// (fragmentation and temporaries).</item>
/// </list>
/// A GPU size of N GB means N × 2^30 bytes (vendors' "GB" for device memory are GiB, H200's 141 GB aside, which we treat alike).
/// </summary>
public static class VramEstimator
{
    /// <summary>Common accelerator memory sizes in GB.</summary>
    public static readonly int[] GpuSizesGb = [8, 12, 16, 24, 40, 48, 80, 141];

    /// <summary>Tokens per prefill piece assumed for activation memory.</summary>
    public const int PrefillChunk = 512;

    /// <summary>Fixed runtime overhead: 512 MiB. Measured: opening a CUDA context and loading QuantServe's kernels takes
    /// 557 MB of device memory on an H100 (driver 580, CUDA 13) before any model (the earlier 256 MiB under-counted it).</summary>
    public const long FixedOverheadBytes = 512L << 20;

    /// <summary>Bytes of one key (or value) row of <paramref name="elements"/> elements in <paramref name="type"/>.</summary>
    public static long KvRowBytes(KvCacheType type, int elements) => type switch
    {
        KvCacheType.F16 => 2L * elements,
        KvCacheType.F32 => 4L * elements,
        KvCacheType.Q8_0 => 34L * ((elements + 31) / 32),
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };

    /// <summary>Parses "f16" | "f32" | "q8_0" (case-insensitive); null when unknown.</summary>
    public static KvCacheType? ParseKvCacheType(string? text) => text?.ToLowerInvariant() switch
    {
        null or "" or "f16" => KvCacheType.F16,
        "f32" => KvCacheType.F32,
        "q8_0" => KvCacheType.Q8_0,
        _ => null,
    };

    /// <summary>Estimates memory for <paramref name="config"/> with <paramref name="weightsBytes"/> of stored weights.</summary>
    public static VramEstimate Estimate(ModelConfig config, long weightsBytes, int context, int batch, KvCacheType kvType = KvCacheType.F16)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (context <= 0) throw new ArgumentOutOfRangeException(nameof(context), context, "context must be positive");
        if (batch <= 0) throw new ArgumentOutOfRangeException(nameof(batch), batch, "batch must be positive");
        if (weightsBytes < 0) throw new ArgumentOutOfRangeException(nameof(weightsBytes));

        long kv = 2L * config.Layers * batch * context * KvRowBytes(kvType, config.KvDim);
        long chunk = Math.Min((long)batch * context, PrefillChunk);
        long perToken = 3L * config.Dim + 2L * config.QDim + 2L * config.KvDim + 2L * config.HiddenDim + config.VocabSize;
        long activations = 4L * chunk * perToken;
        long overhead = FixedOverheadBytes + (weightsBytes + kv + activations) / 20;
        long total = weightsBytes + kv + activations + overhead;
        var fits = GpuSizesGb.Where(gb => total <= (long)gb << 30).ToArray();
        return new VramEstimate(weightsBytes, kv, activations, overhead, total, context, batch, kvType, fits);
    }

    /// <summary>Estimates memory for a loaded model (weights as stored, <see cref="LoadedModel.WeightBytes"/>).</summary>
    public static VramEstimate Estimate(LoadedModel model, int context, int batch, KvCacheType kvType = KvCacheType.F16)
        => Estimate(model.Config, model.WeightBytes, context, batch, kvType);
}
