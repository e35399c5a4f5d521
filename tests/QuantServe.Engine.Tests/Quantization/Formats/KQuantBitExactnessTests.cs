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
    private static readonly Lazy<KQuantGgufTestFile> F16 = new(() => new(Path.Combine(SharedAssets.Prose15mGguf, "prose-15m-f16.gguf")));
    private static readonly Dictionary<string, KQuantGgufTestFile> Files = new();

    private static KQuantGgufTestFile Open(string file)
    {
        lock (Files)
        {
            if (!Files.TryGetValue(file, out var f)) Files[file] = f = new KQuantGgufTestFile(Path.Combine(SharedAssets.Prose15mGguf, file));
            return f;
        }
    }

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
        var quant = Open(FileFor(type));
        var tensors = quant.Tensors.Values.Where(t => t.Type == format.Ggml).ToList();
        Assert.NotEmpty(tensors);
        foreach (var t in tensors)
        {
            int cols = (int)t.Shape[0], rows = (int)Math.Min(t.Shape[1], maxRows);
            var src = F16.Value.F16RowsAsFloat(F16.Value.Tensors[t.Name], 0, rows);
            var expected = quant.Rows(t, 0, rows);
            var actual = new byte[expected.Length];
            long rb = format.RowBytes(cols);
            Parallel.For(0, rows, r => format.QuantizeRow(src.AsSpan(r * cols, cols), actual.AsSpan((int)(r * rb), (int)rb)));
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
        var t = F16.Value.Tensors["blk.3.ffn_up.weight"];
        int cols = (int)t.Shape[0], rows = 64;
        var x = F16.Value.F16RowsAsFloat(t, 0, rows);
        var q = KQuantFormatTests.Quantize(format, x, rows, cols);
        var back = new float[x.Length];
        long rb = format.RowBytes(cols);
        for (int r = 0; r < rows; r++) format.DequantizeRow(q.AsSpan((int)(r * rb), (int)rb), back.AsSpan(r * cols, cols));
        double rms = Math.Sqrt(x.Sum(v => (double)v * v) / x.Length);
        double rel = KQuantTestData.Rmse(x, back) / rms;
        Assert.True(rel < budget, $"{type}: relative RMSE {rel:F4} over {budget}");
    }
}
