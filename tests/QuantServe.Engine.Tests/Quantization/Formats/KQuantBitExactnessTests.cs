using QuantServe.Engine.Formats.Gguf;
using QuantServe.Engine.Quantization.Formats;
using QuantServe.Engine.Tensors;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Quantization.Formats;

/// <summary>
/// Quantizing prose-15m's F16 weights must reproduce, byte for byte, the tensors llama-quantize (no imatrix, so the
/// *_ref quantizers) wrote into the prose-15m-&lt;TYPE&gt;.gguf files.
/// </summary>
public class KQuantBitExactnessTests
{
    private static GgufFile Open(string file) => GgufFile.Open(Path.Combine(SharedAssets.Prose15mGguf, file));

    /// <summary>Which llama.cpp file holds tensors of each k-quant type (see llama-cpp-reference.md).</summary>
    private static string FileFor(string type) => type switch
    {
        "Q2_K" => "prose-15m-Q2_K.gguf",
        "Q3_K" => "prose-15m-Q3_K_M.gguf",
        "Q4_K" => "prose-15m-Q4_K_M.gguf",
        "Q5_K" => "prose-15m-Q5_K_M.gguf",
        _ => "prose-15m-Q6_K.gguf",
    };

    public static TheoryData<string> Formats() => KQuantFormatTests.Formats();

    /// <summary>First rows of every tensor of the type (all 57 matrices' worth of types), fast enough for CI.</summary>
    [Theory]
    [MemberData(nameof(Formats))]
    public void QuantizeRow_Prose15mF16Rows_MatchLlamaQuantizeBytes(string type) => Compare(type, 24);

    [Theory]
    [Trait("Category", "Slow")]
    [MemberData(nameof(Formats))]
    public void QuantizeRow_Prose15mWholeTensors_MatchLlamaQuantizeBytes(string type) => Compare(type, int.MaxValue);

    private static void Compare(string type, int maxRows)
    {
        var format = KQuantTestData.Format(type);
        using var f16 = Open("prose-15m-f16.gguf");
        using var quant = Open(FileFor(type));
        var tensors = quant.Tensors.Where(t => t.Type == format.Ggml).ToList();
        Assert.NotEmpty(tensors);
        foreach (var t in tensors)
        {
            var source = f16.Matrix(t.Name);
            Assert.Equal(GgmlType.F16, f16.Tensor(t.Name).Type);
            int cols = source.Cols, rows = Math.Min(source.Rows, maxRows);
            long rb = format.RowBytes(cols);
            var expected = t.Span[..(int)(rows * rb)];
            var actual = new byte[expected.Length];
            Parallel.For(0, rows, () => new float[cols], (r, _, row) =>
            {
                source.DequantizeRow((int)r, row);
                format.QuantizeRow(row, actual.AsSpan((int)(r * rb), (int)rb));
                return row;
            }, _ => { });
            int mismatch = expected.SequenceCompareTo(actual) == 0 ? -1 : FirstDifference(expected, actual);
            Assert.True(mismatch < 0, $"{type} {t.Name}: first differing byte {mismatch} (row {mismatch / rb}, block {mismatch % rb / format.BlockBytes}, offset {mismatch % format.BlockBytes})");
        }
    }

    private static int FirstDifference(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b)
    {
        for (int i = 0; i < a.Length; i++) if (a[i] != b[i]) return i;
        return -1;
    }

    /// <summary>Real-weight round trip: RMSE relative to the tensor's RMS stays within the same per-type budgets.</summary>
    [Theory]
    [MemberData(nameof(Formats))]
    public void DequantizeRow_Prose15mTensor_RelativeRmseWithinBudget(string type)
    {
        var format = KQuantTestData.Format(type);
        double budget = type switch { "Q2_K" => 0.35, "Q3_K" => 0.20, "Q4_K" => 0.12, "Q5_K" => 0.06, _ => 0.03 };
        using var f16 = Open("prose-15m-f16.gguf");
        var m = f16.Matrix("blk.3.ffn_up.weight");
        int cols = m.Cols, rows = 64;
        var x = new float[rows * cols];
        for (int r = 0; r < rows; r++) m.DequantizeRow(r, x.AsSpan(r * cols, cols));
        var q = KQuantFormatTests.Quantize(format, x, rows, cols);
        var back = new float[x.Length];
        long rb = format.RowBytes(cols);
        for (int r = 0; r < rows; r++) format.DequantizeRow(q.AsSpan((int)(r * rb), (int)rb), back.AsSpan(r * cols, cols));
        double rms = Math.Sqrt(x.Sum(v => (double)v * v) / x.Length);
        double rel = KQuantTestData.Rmse(x, back) / rms;
        Assert.True(rel < budget, $"{type}: relative RMSE {rel:F4} over {budget}");
    }
}
