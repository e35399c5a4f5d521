using QuantServe.Engine.Kernels.Cpu;
using QuantServe.Engine.Models;

namespace QuantServe.Engine.Tests.Kernels;

public class VectorOpsTests
{
    private static float[] Random(int n, int seed, float scale = 1)
    {
        var r = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (float)(r.NextDouble() * 2 - 1) * scale).ToArray();
    }

    [Theory]
    [InlineData(1)]
    [InlineData(64)]
    [InlineData(173)]
    public void RmsNorm_RandomVector_MatchesFormula(int n)
    {
        var x = Random(n, n);
        var w = Random(n, n + 1);
        var y = new float[n];
        RmsNorm.Apply(x, w, 1e-5f, y);
        double ms = x.Sum(v => (double)v * v) / n;
        for (int i = 0; i < n; i++)
        {
            double expected = x[i] * w[i] / Math.Sqrt(ms + 1e-5);
            Assert.True(Math.Abs(expected - y[i]) <= 1e-5 * (1 + Math.Abs(expected)), $"i={i}: {y[i]} vs {expected}");
        }
    }

    [Fact]
    public void Softmax_LargeLogits_NoOverflowAndSumsToOne()
    {
        var x = new[] { 1000f, 999f, -1000f, 998f };
        Softmax.InPlace(x);
        double z = 1 + Math.Exp(-1) + Math.Exp(-2);
        Assert.Equal(1 / z, x[0], 6);
        Assert.Equal(Math.Exp(-1) / z, x[1], 6);
        Assert.Equal(0, x[2], 6);
        Assert.Equal(1.0, x.Sum(), 5);
    }

    [Fact]
    public void SwiGlu_EveryPathLengths0To300_MatchesScalarFormula()
    {
        foreach (var path in KernelPaths.Available)
            for (int n = 0; n <= 300; n++)
            {
                var gate = Random(n, n, 8);
                var up = Random(n, n + 7);
                var expected = gate.Select((g, i) => g / (1 + Math.Exp(-g)) * up[i]).ToArray();
                SwiGlu.Apply(path, gate, up);
                for (int i = 0; i < n; i++)
                    Assert.True(Math.Abs(expected[i] - gate[i]) <= 1e-5 * (1 + Math.Abs(expected[i])), $"{path} n={n} i={i}: {gate[i]} vs {expected[i]}");
            }
    }

    [Fact]
    public void ResidualAdd_Vectors_AddsElementwise()
    {
        var x = Random(37, 1);
        var d = Random(37, 2);
        var expected = x.Select((v, i) => v + d[i]).ToArray();
        ResidualAdd.Apply(x, d);
        Assert.Equal(expected, x);
    }

    [Theory]
    [InlineData(RopeStyle.Interleaved)]
    [InlineData(RopeStyle.Neox)]
    public void Rope_KnownPosition_RotatesPairsByFormula(RopeStyle style)
    {
        const int headDim = 8, heads = 2, pos = 5;
        const float theta = 10000f, scale = 2f;
        var table = new RopeTable(headDim, 16, theta, scale, style);
        var v = Random(heads * headDim, 3);
        var original = v.ToArray();
        table.Apply(v, pos);
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < headDim / 2; i++)
            {
                int a = h * headDim + (style == RopeStyle.Interleaved ? 2 * i : i);
                int b = h * headDim + (style == RopeStyle.Interleaved ? 2 * i + 1 : i + headDim / 2);
                double angle = pos / (double)scale * Math.Pow(theta, -2.0 * i / headDim);
                Assert.Equal(original[a] * Math.Cos(angle) - original[b] * Math.Sin(angle), v[a], 5);
                Assert.Equal(original[a] * Math.Sin(angle) + original[b] * Math.Cos(angle), v[b], 5);
            }
    }

    [Fact]
    public void Rope_FarPositionThenNearOne_TableGrowsAndMatchesFreshTable()
    {
        var growing = new RopeTable(8, 10000, 10000f, 1f, RopeStyle.Neox);
        var a = Random(8, 6);
        var b = a.ToArray();
        growing.Apply(a, 9999); // beyond the first tabulated rows
        var fresh = new RopeTable(8, 10000, 10000f, 1f, RopeStyle.Neox);
        fresh.Apply(b, 9999);
        Assert.Equal(b, a);
        var c = Random(8, 7);
        var d = c.ToArray();
        growing.Apply(c, 3);
        new RopeTable(8, 4, 10000f, 1f, RopeStyle.Neox).Apply(d, 3);
        Assert.Equal(d, c);
    }

    [Fact]
    public void Rope_PositionZero_IsIdentity()
    {
        var table = new RopeTable(16, 4, 10000f, 1f, RopeStyle.Neox);
        var v = Random(32, 4);
        var original = v.ToArray();
        table.Apply(v, 0);
        Assert.Equal(original, v);
    }

    [Fact]
    public void Rope_PositionBeyondTable_Throws()
    {
        var table = new RopeTable(8, 4, 10000f, 1f, RopeStyle.Interleaved);
        Assert.Throws<ArgumentOutOfRangeException>(() => table.Apply(new float[8], 4));
    }
}
