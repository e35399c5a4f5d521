using QuantServe.Engine.Formats.Gguf;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Quantization.Formats;

/// <summary>
/// Our reference quantizers against llama.cpp's own llama-quantize output: every tensor that prose-15m-TYPE.gguf stores
/// in TYPE is re-quantized from prose-15m-f16.gguf and must come out byte for byte the same.
/// </summary>
public class LegacyGgufBitExactTests
{
    private static string F16Path => Path.Combine(SharedAssets.Prose15mGguf, "prose-15m-f16.gguf");

    [Theory]
    [MemberData(nameof(LegacyTestData.Formats), MemberType = typeof(LegacyTestData))]
    public void QuantizeRow_EveryProse15mTensorOfType_MatchesLlamaQuantizeBytes(string name)
    {
        var f = LegacyTestData.Format(name);
        using var src = GgufFile.Open(F16Path);
        using var q = GgufFile.Open(Path.Combine(SharedAssets.Prose15mGguf, $"prose-15m-{name}.gguf"));
        int tensors = 0;
        long blocks = 0;
        foreach (var t in q.Tensors.Where(t => t.Type == f.Ggml))
        {
            var s = src.Matrix(t.Name);
            var m = q.Matrix(t.Name);
            Assert.Equal((s.Rows, s.Cols), (m.Rows, m.Cols));
            Assert.Same(f, m.Format);
            int rowBytes = (int)f.RowBytes(m.Cols);
            var x = new float[m.Cols];
            var mine = new byte[rowBytes];
            for (int r = 0; r < m.Rows; r++)
            {
                s.DequantizeRow(r, x);
                f.QuantizeRow(x, mine);
                var theirs = m.RowSpan(r);
                if (!theirs.SequenceEqual(mine))
                {
                    int at = theirs.CommonPrefixLength(mine);
                    Assert.Fail($"{name} {t.Name} row {r}: first difference at byte {at} (block {at / f.BlockBytes}): " +
                                $"llama.cpp {theirs[at]:X2}, ours {mine[at]:X2}");
                }
            }
            tensors++;
            blocks += (long)m.Rows * m.Cols / 32;
        }
        // llama-cpp-reference.md: 56 matrices of the type (57 for Q8_0, whose embedding stays Q8_0 too).
        Assert.Equal(name == "Q8_0" ? 57 : 56, tensors);
        Assert.True(blocks > 100_000);
    }

    [Theory]
    [MemberData(nameof(LegacyTestData.Formats), MemberType = typeof(LegacyTestData))]
    public void DequantizeRow_LlamaQuantizedTensor_WithinHalfStepOfF16(string name)
    {
        var f = LegacyTestData.Format(name);
        using var src = GgufFile.Open(F16Path);
        using var q = GgufFile.Open(Path.Combine(SharedAssets.Prose15mGguf, $"prose-15m-{name}.gguf"));
        var m = q.Matrix("blk.0.ffn_down.weight");
        var s = src.Matrix("blk.0.ffn_down.weight");
        Assert.Same(f, m.Format);
        var x = new float[m.Cols];
        var y = new float[m.Cols];
        double err2 = 0, sig2 = 0;
        for (int r = 0; r < m.Rows; r++)
        {
            s.DequantizeRow(r, x);
            m.DequantizeRow(r, y);
            for (int b = 0; b < m.Cols / 32; b++)
            {
                // Half a quantization step (from the block's own range) plus FP16 rounding of the scale and min.
                float lo = x.Skip(b * 32).Take(32).Min(), hi = x.Skip(b * 32).Take(32).Max();
                float amax = Math.Max(-lo, hi);
                float step = name switch
                {
                    "Q4_0" => amax / 8, "Q5_0" => amax / 16, "Q8_0" => amax / 127,
                    "Q4_1" => (hi - lo) / 15, _ => (hi - lo) / 31,
                };
                for (int j = b * 32; j < b * 32 + 32; j++)
                {
                    // Q4_0/Q5_0 clamp the top code, so the far end of the range may miss by a whole step.
                    Assert.True(Math.Abs(x[j] - y[j]) <= step * 1.01f + 2e-3f * amax, $"{m.Name}[{r},{j}] {x[j]} -> {y[j]}");
                    err2 += (x[j] - y[j]) * (double)(x[j] - y[j]);
                    sig2 += (double)x[j] * x[j];
                }
            }
        }
        Assert.True(err2 < sig2 * 0.05);
    }
}
