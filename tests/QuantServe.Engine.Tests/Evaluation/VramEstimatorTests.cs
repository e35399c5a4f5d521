using QuantServe.Engine.Evaluation;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tensors;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Evaluation;

public sealed class VramEstimatorTests
{
    [Fact]
    public void Estimate_Stories260K_ExactComponents()
    {
        using var model = ModelLoader.Load(SharedAssets.Stories260K);
        // dim 64, hidden 172, 5 layers, 8 heads, 4 KV heads, head_dim 8, vocab 512; F32 weights, shared classifier:
        // embedding 512×64 + per layer (q 64×64, k, v 32×64, o 64×64, gate/up 172×64, down 64×172, norms 2×64) + final norm 64.
        long perLayer = 64 * 64 + 2 * 32 * 64 + 64 * 64 + 3 * 172 * 64 + 2 * 64;
        long weights = 4L * (512 * 64 + 5 * perLayer + 64);
        Assert.Equal(weights, model.WeightBytes);

        var v = VramEstimator.Estimate(model, context: 512, batch: 3, KvCacheType.F32);
        Assert.Equal(weights, v.WeightsBytes);
        Assert.Equal(2L * 5 * 4 * 8 * 512 * 3 * 4, v.KvCacheBytes);
        // chunk = min(3 × 512, 512), shared by the batch; per token: 3·dim 192 + 2·qdim 128 + 2·kvdim 64 + 2·hidden 344 + vocab 512 = 1240.
        Assert.Equal(4L * 512 * 1240, v.ActivationsBytes);
        Assert.Equal(VramEstimator.FixedOverheadBytes + (weights + v.KvCacheBytes + v.ActivationsBytes) / 20, v.OverheadBytes);
        Assert.Equal(v.WeightsBytes + v.KvCacheBytes + v.ActivationsBytes + v.OverheadBytes, v.TotalBytes);
        Assert.Equal(VramEstimator.GpuSizesGb, v.Fits);
    }

    [Fact]
    public void Estimate_LargerBatch_OnlyKvCacheAndOverheadGrow()
    {
        // One forward piece serves the whole batch: scratch stops growing once batch × context reaches the piece size.
        var config = new ModelConfig { Dim = 2048, HiddenDim = 5632, Layers = 22, Heads = 32, KvHeads = 4, HeadDim = 64, VocabSize = 32000, ContextLength = 2048 };
        var b1 = VramEstimator.Estimate(config, 630_000_000, 512, 1, KvCacheType.F32);
        var b16 = VramEstimator.Estimate(config, 630_000_000, 512, 16, KvCacheType.F32);
        Assert.Equal(b1.ActivationsBytes, b16.ActivationsBytes);
        Assert.Equal(16 * b1.KvCacheBytes, b16.KvCacheBytes);
        Assert.Equal(b16.KvCacheBytes - b1.KvCacheBytes + (b16.OverheadBytes - b1.OverheadBytes), b16.TotalBytes - b1.TotalBytes);
        var shortContext = VramEstimator.Estimate(config, 630_000_000, 32, 1, KvCacheType.F32);
        Assert.Equal(b1.ActivationsBytes / 16, shortContext.ActivationsBytes);
    }

    [Fact]
    public void Estimate_KvCacheTypes_ScaleAsStored()
    {
        var config = new ModelConfig { Dim = 4096, HiddenDim = 14336, Layers = 32, Heads = 32, KvHeads = 8, HeadDim = 128, VocabSize = 128256, ContextLength = 131072 };
        var f16 = VramEstimator.Estimate(config, 16L << 30, 8192, 1);
        Assert.Equal(1L << 30, f16.KvCacheBytes); // Llama-3-8B: 128 KiB per position in f16
        Assert.Equal(2 * f16.KvCacheBytes, VramEstimator.Estimate(config, 16L << 30, 8192, 1, KvCacheType.F32).KvCacheBytes);
        Assert.Equal(f16.KvCacheBytes / 64 * 34, VramEstimator.Estimate(config, 16L << 30, 8192, 1, KvCacheType.Q8_0).KvCacheBytes);
        Assert.DoesNotContain(16, f16.Fits);
        Assert.Contains(24, f16.Fits);
        Assert.Throws<ArgumentOutOfRangeException>(() => VramEstimator.Estimate(config, 1, 0, 1));
    }

    [Fact]
    public void WeightsBytesAs_ProseF16ToQ8_0_MatchesLlamaCppTensorBytes()
    {
        using var model = ModelLoader.Load(System.IO.Path.Combine(SharedAssets.Prose15mGguf, "prose-15m-f16.gguf"));
        using var q8 = ModelLoader.Load(System.IO.Path.Combine(SharedAssets.Prose15mGguf, "prose-15m-Q8_0.gguf"));
        Assert.Equal(q8.WeightBytes, QuantizationPlanner.WeightsBytesAs(model, GgmlType.Q8_0));
    }
}
