using QuantServe.Engine.Formats.Gguf;
using QuantServe.Engine.Quantization.Formats;
using QuantServe.Engine.Tests.TestSupport;
using Xunit.Abstractions;

namespace QuantServe.Engine.Tests.Quantization.Formats;

/// <summary>
/// Quantize → dequantize error budgets. Two kinds: ggml's own test-quantize-fns protocol (synthetic cosine data,
/// "total error" = sqrt(Σ(x−x̂)²)/n ≤ 0.002, dot-product error |q(x)·q8(y) − x·y|/n ≤ 0.02), and relative RMSE
/// (‖x−x̂‖/‖x‖) on N(0,1) data and on real prose-15m matrices, against budgets set from the format's step size
/// (uniform rounding error ≈ step/√12) with a margin.
/// </summary>
public class LegacyRoundTripTests(ITestOutputHelper output)
{
    /// <summary>Relative RMSE budgets for N(0,1) data: measured values (Q4_0 .0857, Q4_1 .0781, Q5_0 .0427,
    /// Q5_1 .0377, Q8_0 .0054 at the time of writing) plus ~15%.</summary>
    private static double GaussianBudget(string name) => name switch
    {
        "Q4_0" => 0.10, "Q4_1" => 0.09, "Q5_0" => 0.05, "Q5_1" => 0.044, _ => 0.0063,
    };

    private static double Roundtrip(LegacyQuantFormat f, float[] x)
    {
        var q = new byte[f.RowBytes(x.Length)];
        var y = new float[x.Length];
        f.QuantizeRow(x, q);
        f.DequantizeRow(q, y);
        double e = 0, s = 0;
        for (int i = 0; i < x.Length; i++) { e += (x[i] - y[i]) * (double)(x[i] - y[i]); s += (double)x[i] * x[i]; }
        return Math.Sqrt(e / s);
    }

    [Theory]
    [MemberData(nameof(LegacyTestData.Formats), MemberType = typeof(LegacyTestData))]
    public void Roundtrip_GgmlTestQuantizeFnsData_WithinGgmlThresholds(string name)
    {
        var f = LegacyTestData.Format(name);
        const int n = 32 * 128; // ggml's test_size
        var x = new float[n];
        var z = new float[n];
        for (int i = 0; i < n; i++) { x[i] = 0.1f + 2 * MathF.Cos(i); z[i] = 0.1f + 2 * MathF.Cos(i + 1); }
        var q = new byte[f.RowBytes(n)];
        var y = new float[n];
        f.QuantizeRow(x, q);
        f.DequantizeRow(q, y);
        double e = 0;
        for (int i = 0; i < n; i++) e += (x[i] - y[i]) * (double)(x[i] - y[i]);
        double totalError = Math.Sqrt(e) / n;
        Assert.True(totalError < 0.002, $"{name}: total error {totalError}");

        var a = new byte[f.ActivationBytes(n)];
        f.PrepareActivation(z, a);
        var result = new float[1];
        unsafe
        {
            fixed (byte* pq = q)
            {
                var m = new QuantServe.Engine.Tensors.WeightMatrix("cos", f, 1, n, pq);
                f.DotRows(m, 0, 1, a, a.Length, 1, result, 1);
            }
        }
        double dot = 0;
        for (int i = 0; i < n; i++) dot += (double)x[i] * z[i];
        double dotError = Math.Abs(result[0] - dot) / n;
        output.WriteLine($"{name}: total error {totalError:E3}, dot error {dotError:E3}");
        Assert.True(dotError < 0.02, $"{name}: dot product error {dotError}");
    }

    [Theory]
    [MemberData(nameof(LegacyTestData.Formats), MemberType = typeof(LegacyTestData))]
    public void Roundtrip_Gaussian_RelativeRmseWithinBudget(string name)
    {
        var f = LegacyTestData.Format(name);
        double rmse = Roundtrip(f, LegacyTestData.Gaussian(32 * 4096, 5, withSpecials: false));
        output.WriteLine($"{name}: N(0,1) relative RMSE {rmse:F4} (budget {GaussianBudget(name)})");
        Assert.True(rmse <= GaussianBudget(name), $"{name}: relative RMSE {rmse}");
        Assert.True(rmse >= GaussianBudget(name) / 3, $"{name}: relative RMSE {rmse} is implausibly small");
    }

    [Theory]
    [MemberData(nameof(LegacyTestData.Formats), MemberType = typeof(LegacyTestData))]
    public void Roundtrip_Prose15mMatrices_RelativeRmseWithinBudget(string name)
    {
        var f = LegacyTestData.Format(name);
        using var src = GgufFile.Open(Path.Combine(SharedAssets.Prose15mGguf, "prose-15m-f16.gguf"));
        foreach (var tensorName in new[] { "blk.0.attn_q.weight", "blk.3.ffn_up.weight", "blk.7.ffn_down.weight", "blk.5.attn_v.weight" })
        {
            var t = src.Matrix(tensorName);
            var x = new float[t.Rows * t.Cols];
            for (int r = 0; r < t.Rows; r++) t.DequantizeRow(r, x.AsSpan(r * t.Cols, t.Cols));
            double rmse = Roundtrip(f, x);
            output.WriteLine($"{name} {tensorName}: relative RMSE {rmse:F4}");
            // Measured within 2.5% of the N(0,1) figure for every matrix; allow heavier-tailed layers 10%.
            Assert.True(rmse <= GaussianBudget(name) * 1.1, $"{name} {tensorName}: relative RMSE {rmse}");
        }
    }
}
