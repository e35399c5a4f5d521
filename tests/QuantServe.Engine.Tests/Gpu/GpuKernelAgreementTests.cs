using QuantServe.Engine.Gpu;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tensors;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Gpu;

/// <summary>Device kernels against references (skipped without a GPU): GEMV vs the CPU's DequantizeRow, split-K attention vs one block per head.</summary>
public class GpuKernelAgreementTests
{
    [GpuFact]
    public void Gemv_IntegerDotFormats_MatchCpuDequantizeRowWithinActivationRounding()
    {
        using var backend = CudaBackend.Open(0);
        foreach (var name in new[] { "Q4_K", "Q5_K", "Q6_K", "Q4_0", "Q8_0", "int4-g128", "int4-g64-asym", "int8", "int8-g16", "int8-asym", "nf4", "nf4-dq", "fp4" })
            foreach (int batch in new[] { 1, 5 })
            {
                var r = GpuBench.Gemv(backend, TensorFormats.ForName(name)!, 300, 2304, batch, 2);
                Assert.True(r.MaxRelError < 1e-2, $"{name} batch {batch}: {r.MaxRelError}");
            }
    }

    [GpuFact]
    public void DecodeAttention_RaggedContexts_MatchesOneBlockPerHeadWithin1e5()
    {
        using var backend = CudaBackend.Open(0);
        foreach (var (heads, kvHeads, headDim) in new[] { (32, 4, 64), (8, 4, 8), (6, 6, 48), (16, 2, 128) })
        {
            var r = GpuBench.Attention(backend, heads, kvHeads, headDim, [1, 2, 33, 64, 65, 130, 700, 2049], 1);
            Assert.True(r.MaxRelDiff <= 1e-5, $"{heads}/{kvHeads}×{headDim}: {r.MaxRelDiff}");
        }
    }

    [Theory]
    [InlineData(32, 1, 132)]
    [InlineData(32, 16, 132)]
    [InlineData(8, 1, 132)]
    [InlineData(32, 256, 132)]
    [InlineData(6, 3, 108)]
    public void AttentionSplits_FillTheSmsWithoutEmptySplits(int heads, int tokens, int sms)
    {
        int splits = GpuKernels.AttentionSplits(heads, tokens, sms);
        Assert.InRange(splits, 1, GpuKernels.MinAttentionChunk);
        // Enough blocks for four per SM unless capped; and a context of n positions split ⌈n / chunk⌉ ways (≤ splits)
        // leaves no split empty because splits ≤ MinAttentionChunk.
        if (splits < GpuKernels.MinAttentionChunk) Assert.True(heads * tokens * splits >= 4 * sms || splits == 1);
        for (int n = 1; n <= 3000; n += 7)
        {
            int used = Math.Min(splits, (n + GpuKernels.MinAttentionChunk - 1) / GpuKernels.MinAttentionChunk);
            int chunk = (n + used - 1) / used;
            Assert.True((used - 1) * chunk < n, $"n {n}: split {used - 1} would start at {(used - 1) * chunk}");
        }
    }

    [GpuFact]
    public void GpuModel_SplitAttentionAndProgrammaticLaunch_GiveTheSameLogitsAsThePlainPath()
    {
        using var backend = CudaBackend.Open(0);
        using var model = ModelLoader.Load(SharedAssets.Path("models", "prose-15m-gguf", "prose-15m-Q4_K_M.gguf"));
        using var gpu = new GpuLlamaModel(backend.Device, backend.Kernels, model, 64);
        var prompts = new List<int[]> { model.Tokenizer.Encode("The Lord is my shepherd", addBos: true) };
        gpu.SplitAttention = false;
        gpu.ProgrammaticLaunch = false;
        var plain = DeviceComparison.RunDevice(gpu, prompts, 8);
        gpu.SplitAttention = true;
        var split = DeviceComparison.RunDevice(gpu, prompts, 8);
        gpu.ProgrammaticLaunch = true;
        var pdl = DeviceComparison.RunDevice(gpu, prompts, 8);
        var a = DeviceComparison.Compare(plain, split, model.Config.VocabSize);
        Assert.True(a.MaxAbsLogitDiff <= 1e-3, $"split vs one block per head: {a.MaxAbsLogitDiff}");
        var b = DeviceComparison.Compare(split, pdl, model.Config.VocabSize);
        Assert.Equal(0, b.MaxAbsLogitDiff);
    }
}
