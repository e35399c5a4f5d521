using QuantServe.Engine.Kernels.Cpu;

namespace QuantServe.Engine.Tests.Kernels;

public class AttentionScoresTests
{
    private static float[] Random(int n, int seed)
    {
        var r = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (float)(r.NextDouble() * 2 - 1)).ToArray();
    }

    [Theory]
    [InlineData(8, 1)]
    [InlineData(32, 37)]
    [InlineData(20, 5)]
    [InlineData(3, 9)]
    [InlineData(128, 300)]
    [InlineData(24, 7)]
    [InlineData(48, 4)]
    [InlineData(9, 11)]
    public void ScaledDotsAndWeightedSum_HeadWidths_MatchNaiveLoops(int headDim, int positions)
    {
        int stride = headDim * 3 + 1; // other heads interleaved, as in the cache
        var q = Random(headDim, 1);
        var cache = Random(positions * stride + headDim, 2);
        var scores = new float[positions];
        AttentionScores.ScaledDots(q, cache, stride, positions, 0.25f, scores);
        for (int j = 0; j < positions; j++)
        {
            double expected = 0;
            for (int c = 0; c < headDim; c++) expected += q[c] * cache[j * stride + c];
            Assert.True(Math.Abs(expected * 0.25 - scores[j]) < 1e-5, $"score {j}");
        }

        var output = new float[headDim];
        AttentionScores.WeightedSum(scores, cache, stride, positions, output);
        for (int c = 0; c < headDim; c++)
        {
            double expected = 0;
            for (int j = 0; j < positions; j++) expected += scores[j] * cache[j * stride + c];
            Assert.True(Math.Abs(expected - output[c]) < 1e-4, $"output {c}");
        }
    }

    [Fact]
    public void ScaledDots_KeysTooShort_Throws() =>
        Assert.Throws<ArgumentException>(() => AttentionScores.ScaledDots(new float[8], new float[20], 8, 3, 1f, new float[3]));

    [Theory]
    [InlineData(16, 1, 4)]
    [InlineData(32, 37, 4)]
    [InlineData(64, 300, 3)]
    [InlineData(128, 5, 2)]
    [InlineData(32, 4, 1)]
    public unsafe void FourQueryKernels_HeadWidthsAndAliasedSlots_MatchSingleQueryKernels(int headDim, int positions, int queries)
    {
        if (!AttentionScores.MultiQuerySupported(headDim)) return;
        int stride = headDim * 2 + 16; // other heads interleaved, as in the cache
        var q = Random(4 * headDim, 3);
        var cache = Random(positions * stride + headDim, 4);
        var scores = new float[4 * positions];
        var output = new float[4 * headDim];
        fixed (float* pq = q)
        fixed (float* pc = cache)
        fixed (float* ps = scores)
        fixed (float* po = output)
        {
            // Slots beyond `queries` repeat query 0 and share the last score row and output, as CausalAttention passes them.
            var qp = new nint[4];
            var sp = new nint[4];
            var op = new nint[4];
            for (int k = 0; k < 4; k++)
            {
                qp[k] = (nint)(k < queries ? pq + k * headDim : pq);
                sp[k] = (nint)(k < queries ? ps + k * positions : ps + 3 * positions);
                op[k] = (nint)(k < queries ? po + k * headDim : po + 3 * headDim);
            }
            AttentionScores.ScaledDots4Queries((float*)qp[0], (float*)qp[1], (float*)qp[2], (float*)qp[3], pc, stride, positions, headDim, 0.125f,
                (float*)sp[0], (float*)sp[1], (float*)sp[2], (float*)sp[3]);
            for (int k = 0; k < queries; k++)
            {
                var expected = new float[positions];
                AttentionScores.ScaledDots(q.AsSpan(k * headDim, headDim), cache, stride, positions, 0.125f, expected);
                for (int j = 0; j < positions; j++)
                    Assert.True(Math.Abs(expected[j] - scores[k * positions + j]) <= 1e-5f * (1 + Math.Abs(expected[j])), $"query {k} score {j}");
            }
            var weights = Random(4 * positions, 5);
            fixed (float* pw = weights)
            {
                var wp = new nint[4];
                for (int k = 0; k < 4; k++) wp[k] = (nint)(k < queries ? pw + k * positions : pw);
                AttentionScores.WeightedSum4Queries((float*)wp[0], (float*)wp[1], (float*)wp[2], (float*)wp[3], pc, stride, positions, headDim,
                    (float*)op[0], (float*)op[1], (float*)op[2], (float*)op[3]);
            }
            for (int k = 0; k < queries; k++)
            {
                var expected = new float[headDim];
                AttentionScores.WeightedSum(weights.AsSpan(k * positions, positions), cache, stride, positions, expected);
                for (int c = 0; c < headDim; c++)
                    Assert.True(Math.Abs(expected[c] - output[k * headDim + c]) <= 1e-4f * (1 + Math.Abs(expected[c])), $"query {k} output {c}");
            }
        }
    }

    /// <summary>The transposed-key score kernel (prompt pieces) against the row-key one, over key counts on both sides
    /// of its 16- and 32-key steps.</summary>
    [Theory]
    [InlineData(16, 1)]
    [InlineData(32, 15)]
    [InlineData(32, 16)]
    [InlineData(32, 17)]
    [InlineData(32, 33)]
    [InlineData(64, 100)]
    [InlineData(128, 257)]
    public unsafe void ScaledDots4QueriesTransposed_KeyCounts_MatchRowKernel(int headDim, int positions)
    {
        if (!AttentionScores.MultiQuerySupported(headDim)) return;
        int stride = headDim * 2 + 16;
        int ldk = (positions + 15) & ~15;
        var q = Random(4 * headDim, 5);
        var cache = Random(positions * stride + headDim, 6);
        var kt = new float[headDim * ldk];
        var expected = new float[4 * ldk];
        var actual = new float[4 * ldk];
        fixed (float* pq = q)
        fixed (float* pc = cache)
        fixed (float* pt = kt)
        fixed (float* pe = expected)
        fixed (float* pa = actual)
        {
            AttentionScores.TransposeKeys(pc, stride, 0, positions, headDim, pt, ldk);
            AttentionScores.ScaledDots4Queries(pq, pq + headDim, pq + 2 * headDim, pq + 3 * headDim, pc, stride, positions, headDim, 0.2f,
                pe, pe + ldk, pe + 2 * ldk, pe + 3 * ldk);
            AttentionScores.ScaledDots4QueriesTransposed(pq, pq + headDim, pq + 2 * headDim, pq + 3 * headDim, pt, ldk, positions, headDim, 0.2f,
                pa, pa + ldk, pa + 2 * ldk, pa + 3 * ldk);
        }
        for (int k = 0; k < 4; k++)
            for (int j = 0; j < positions; j++)
                Assert.True(Math.Abs(expected[k * ldk + j] - actual[k * ldk + j]) < 1e-5, $"query {k} key {j}");
    }
}
