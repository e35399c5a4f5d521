using QuantServe.Engine.Gpu;
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
        foreach (var name in new[] { "Q4_K", "Q4_0", "Q8_0", "int4-g128", "int4-g64-asym" })
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
}
