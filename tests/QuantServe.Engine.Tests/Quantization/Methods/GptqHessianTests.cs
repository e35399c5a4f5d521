using QuantServe.Engine.Quantization.Methods;

namespace QuantServe.Engine.Tests.Quantization.Methods;

public class GptqHessianTests
{
    private static float[] Rows(int tokens, int n, int seed)
    {
        var rng = new Random(seed);
        var x = new float[tokens * n];
        for (int i = 0; i < x.Length; i++) x[i] = (float)((rng.NextDouble() - 0.5) * Math.Exp(4 * rng.NextDouble() - 2));
        return x;
    }

    [Fact]
    public void ToMatrix_AnyBatching_EqualsTheSequentialExactProductSumBitForBit()
    {
        // The device accumulator reproduces these bits: exact float products added token by token in double.
        const int n = 37, tokens = 70;
        var x = Rows(tokens, n, 1);
        var expected = new double[n * n];
        for (int i = 0; i < n; i++)
            for (int j = i; j < n; j++)
            {
                double s = 0;
                for (int t = 0; t < tokens; t++) s += (double)x[t * n + i] * x[t * n + j];
                expected[i * n + j] = expected[j * n + i] = s * (2.0 / tokens);
            }
        using var whole = new GptqHessian(n);
        whole.Add(x, tokens);
        using var split = new GptqHessian(n);
        split.Add(x.AsSpan(0, 33 * n), 33);
        split.Add(x.AsSpan(33 * n), tokens - 33);
        Assert.Equal(expected, whole.ToMatrix());
        Assert.Equal(expected, split.ToMatrix());
        Assert.Equal(tokens, split.Count);
    }

    [Fact]
    public void ToMatrix_NothingAdded_IsZero()
    {
        using var h = new GptqHessian(4);
        Assert.All(h.ToMatrix(), v => Assert.Equal(0.0, v));
    }
}
