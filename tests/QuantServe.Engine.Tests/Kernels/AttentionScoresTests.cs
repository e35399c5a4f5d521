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
}
