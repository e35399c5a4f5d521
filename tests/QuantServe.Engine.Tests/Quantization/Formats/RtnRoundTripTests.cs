using System.Runtime.InteropServices;
using QuantServe.Engine.Models;
using QuantServe.Engine.Quantization.Formats;
using QuantServe.Engine.Tensors;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Quantization.Formats;

/// <summary>Quantize → dequantize error budgets of the RTN formats, their names, layouts and the LLM.int8 outlier counter.</summary>
public class RtnRoundTripTests
{
    /// <summary>Relative RMS error budgets (‖x − x̂‖ / ‖x‖) on N(0,1) rows of 4096 and on prose-15m's layer-1 matrices.
    /// Measured on N(0,1) / prose-15m q_proj: int8 0.0084/0.0067, int8-asym 0.0081/0.0062, int8-pt 0.0096/0.0134,
    /// int8-g128 0.0064/0.0062, int4-g32 0.096/0.094, int4-g32-asym 0.081/0.080, int4-g128 0.116/0.114, int3-g128 0.271/0.265,
    /// int2-g64-asym 0.456/0.445, nf4 0.092/0.092, nf4-dq 0.092/0.092, fp4 0.121/0.120, llm-int8 = int8.</summary>
    public static TheoryData<string, double, double> Budgets => new()
    {
        { "int8", 0.010, 0.010 },
        { "int8-asym", 0.009, 0.009 },
        { "int8-pt", 0.011, 0.030 },
        { "int8-g128", 0.007, 0.008 },
        { "int4-g32", 0.10, 0.10 },
        { "int4-g32-asym", 0.085, 0.09 },
        { "int4-g128", 0.12, 0.13 },
        { "int3-g128", 0.28, 0.29 },
        { "int2-g64-asym", 0.47, 0.48 },
        { "nf4", 0.095, 0.10 },
        { "nf4-dq", 0.095, 0.10 },
        { "fp4", 0.125, 0.13 },
        { "llm-int8", 0.010, 0.010 },
    };

    private static double RelativeRms(float[] x, float[] y)
    {
        double e = 0, n = 0;
        for (int i = 0; i < x.Length; i++) { e += (x[i] - (double)y[i]) * (x[i] - y[i]); n += (double)x[i] * x[i]; }
        return Math.Sqrt(e / Math.Max(n, 1e-30));
    }

    private static unsafe float[] RoundTrip(RtnFormat format, float[] values, int rows, int cols)
    {
        var w = RtnTestData.Quantize(format, values, rows, cols, out var buffer);
        try
        {
            var result = new float[rows * cols];
            for (int r = 0; r < rows; r++) w.DequantizeRow(r, result.AsSpan(r * cols, cols));
            return result;
        }
        finally { NativeMemory.Free((void*)buffer); }
    }

    [Theory]
    [MemberData(nameof(Budgets))]
    public void Dequantize_GaussianRows_WithinBudget(string name, double budget, double _)
    {
        var x = LegacyTestData.Gaussian(8 * 4096, 42, withSpecials: false);
        double err = RelativeRms(x, RoundTrip(RtnTestData.Format(name), x, 8, 4096));
        Assert.True(err <= budget, $"{name}: relative RMS error {err:F4} > budget {budget}");
    }

    [Theory]
    [MemberData(nameof(Budgets))]
    public void Dequantize_Prose15mLayerMatrices_WithinBudget(string name, double _, double budget)
    {
        using var model = ModelLoader.Load(SharedAssets.Prose15m);
        var format = RtnTestData.Format(name);
        foreach (var m in new[] { model.Weights.Layers[1].Wq, model.Weights.Layers[1].Down })
        {
            var x = new float[m.Rows * m.Cols];
            for (int r = 0; r < m.Rows; r++) m.DequantizeRow(r, x.AsSpan(r * m.Cols, m.Cols));
            double err = RelativeRms(x, RoundTrip(format, x, m.Rows, m.Cols));
            Assert.True(err <= budget, $"{name} on {m.Name}: relative RMS error {err:F4} > budget {budget}");
        }
    }

    [Theory]
    [InlineData(64)]
    [InlineData(172)]
    [InlineData(1)]
    [InlineData(33)]
    public void QuantizeRow_RaggedWidths_LastGroupKeepsItsOwnScale(int cols)
    {
        // A tail group with much larger values than the rest must not spoil the earlier groups, and vice versa.
        var x = LegacyTestData.Gaussian(cols, cols, withSpecials: false);
        int tail = cols - cols % 32 == cols ? Math.Max(0, cols - 32) : cols - cols % 32;
        for (int j = tail; j < cols; j++) x[j] *= 100;
        var y = RoundTrip(RtnTestData.Format("int8-g32"), x, 1, cols);
        for (int j = 0; j < cols; j++)
        {
            int g = j / 32;
            float amax = x.Skip(g * 32).Take(Math.Min(32, cols - g * 32)).Max(MathF.Abs);
            Assert.True(MathF.Abs(x[j] - y[j]) <= amax / 127 * 0.5001f, $"cols={cols} j={j}: {x[j]} -> {y[j]}");
        }
    }

    [Theory]
    [InlineData("int4-g128", 4, 128, false, false, "int4-g128")]
    [InlineData("INT4-G32-ASYM", 4, 32, true, false, "int4-g32-asym")]
    [InlineData("int8-g0", 8, 0, false, false, "int8")]
    [InlineData("int8-pt", 8, 0, false, true, "int8-pt")]
    [InlineData("int3-g96", 3, 96, false, false, "int3-g96")]
    [InlineData("int2-g64-asym", 2, 64, true, false, "int2-g64-asym")]
    public void ForName_IntegerTypeNames_ParseToTheirParameters(string name, int bits, int group, bool asym, bool perTensor, string canonical)
    {
        var f = Assert.IsType<IntGroupFormat>(TensorFormats.ForName(name));
        Assert.Equal((bits, group, asym, perTensor, canonical), (f.Bits, f.Group, f.Asymmetric, f.PerTensor, f.Name));
    }

    [Theory]
    [InlineData("int5-g32")]
    [InlineData("int4-g")]
    [InlineData("int4-gx")]
    [InlineData("nf3")]
    [InlineData("int4-pt-g32")]
    public void ForName_InvalidNames_ReturnsNull(string name) => Assert.Null(TensorFormats.ForName(name));

    [Fact]
    public void RowBytes_Int4G32Row64_IsTwoScalesAndThirtyTwoCodeBytes()
    {
        Assert.Equal(8 + 32, RtnTestData.Format("int4-g32").RowBytes(64));
        Assert.Equal(8 + 2 + 2 + 32, RtnTestData.Format("int4-g32-asym").RowBytes(64)); // 2 zero bytes padded to 4
        Assert.Equal(4 + 4 * 16, RtnTestData.Format("int8").RowBytes(64));
        Assert.Equal(4 + 48, RtnTestData.Format("int3").RowBytes(100));
        Assert.Equal(4 * 3 + 3 * 32, RtnTestData.Format("nf4").RowBytes(172));
        Assert.Equal(4 + 4 + 4 + 3 * 32, RtnTestData.Format("nf4-dq").RowBytes(172));
        Assert.Equal(4 + 192, RtnTestData.Format("llm-int8").RowBytes(172));
    }

    [Fact]
    public void QuantizeRow_Nf4_CodesAreTheNearestCodebookValues()
    {
        var nf4 = CodebookFormat.Nf4;
        var x = LegacyTestData.Gaussian(64, 5, withSpecials: false);
        var y = RoundTrip(nf4, x, 1, 64);
        float amax = x.Max(MathF.Abs);
        for (int j = 0; j < 64; j++)
        {
            float best = nf4.Values.ToArray().MinBy(v => MathF.Abs(x[j] / amax - v));
            Assert.Equal(best * amax, y[j], 5);
        }
    }

    [Fact]
    public unsafe void DotRows_LlmInt8WithOutlierColumns_CountsThemPerVector()
    {
        var f = LlmInt8Format.Instance;
        const int rows = 4, cols = 96;
        var w = RtnTestData.Quantize(f, LegacyTestData.Gaussian(rows * cols, 3, withSpecials: false), rows, cols, out var buffer);
        try
        {
            var stats = Assert.IsType<LlmInt8Outliers>(w.State);
            int stride = f.ActivationBytes(cols);
            var act = new byte[stride * 2];
            var x0 = new float[cols]; x0[5] = 7; x0[40] = -6.5f; x0[41] = 6f; // 6.0 itself is not an outlier
            var x1 = new float[cols]; x1[90] = 100;
            f.PrepareActivation(x0, act);
            f.PrepareActivation(x1, act.AsSpan(stride));
            var y = new float[rows * 2];
            f.DotRows(w, 0, rows, act, stride, 2, y, rows);
            f.DotRows(w, 2, rows, act, stride, 2, y, rows); // a later row range of the same product counts nothing
            Assert.Equal((3L, 2L, 2L), (stats.Columns, stats.Vectors, stats.MaxColumns));
            var row = new float[cols];
            w.DequantizeRow(1, row);
            Assert.Equal(100 * row[90], y[rows + 1], 4);
        }
        finally { NativeMemory.Free((void*)buffer); }
    }
}
