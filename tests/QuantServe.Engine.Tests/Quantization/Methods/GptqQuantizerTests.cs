using QuantServe.Engine.Quantization.Methods;
using Xunit.Abstractions;

namespace QuantServe.Engine.Tests.Quantization.Methods;

public class GptqQuantizerTests(ITestOutputHelper output)
{
    // Correlated inputs: x = A·z + small noise with z of lower dimension, plus per-column magnitudes spread over 100×,
    // as real activations have (a few outlier channels); weights ~ N(0, 1).
    private static (float[] W, float[] X, int Tokens) Problem(int rows, int cols, int tokens, int seed)
    {
        var rng = new Random(seed);
        double Gauss() => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
        int k = Math.Max(4, cols / 4);
        var a = new double[cols * k];
        for (int i = 0; i < a.Length; i++) a[i] = Gauss();
        var mag = Enumerable.Range(0, cols).Select(_ => Math.Pow(10, 2 * rng.NextDouble() - 1)).ToArray();
        var x = new float[tokens * cols];
        var z = new double[k];
        for (int t = 0; t < tokens; t++)
        {
            for (int i = 0; i < k; i++) z[i] = Gauss();
            for (int c = 0; c < cols; c++)
            {
                double s = 0.05 * Gauss();
                for (int i = 0; i < k; i++) s += a[c * k + i] * z[i];
                x[t * cols + c] = (float)(s * mag[c]);
            }
        }
        var w = new float[rows * cols];
        for (int i = 0; i < w.Length; i++) w[i] = (float)Gauss();
        return (w, x, tokens);
    }

    private static double[] Hessian(float[] x, int tokens, int cols)
    {
        var h = new GptqHessian(cols);
        h.Add(x, tokens);
        return h.ToMatrix();
    }

    // ‖W·X − Ŵ·X‖²_F over the tokens.
    private static double OutputError(float[] w, float[] wq, float[] x, int rows, int cols, int tokens)
    {
        double err = 0;
        for (int r = 0; r < rows; r++)
            for (int t = 0; t < tokens; t++)
            {
                double d = 0;
                for (int c = 0; c < cols; c++) d += (w[r * cols + c] - wq[r * cols + c]) * (double)x[t * cols + c];
                err += d * d;
            }
        return err;
    }

    // Round-to-nearest on the same grid: GPTQ with no error feedback is exactly per-group min/max rounding.
    private static float[] Rtn(float[] w, int rows, int cols, GptqOptions o)
    {
        int g = o.GroupSize > 0 ? o.GroupSize : cols;
        var result = new float[w.Length];
        var row = new double[cols];
        for (int r = 0; r < rows; r++)
        {
            for (int c = 0; c < cols; c++) row[c] = w[r * cols + c];
            for (int g0 = 0; g0 < cols; g0 += g)
            {
                var (scale, zero) = GptqGrid.Fit(row.AsSpan(g0, Math.Min(g, cols - g0)), o.MaxQ, o.Symmetric);
                for (int c = g0; c < Math.Min(g0 + g, cols); c++)
                    result[r * cols + c] = scale * (GptqGrid.Quantize(row[c], scale, zero, o.MaxQ) - zero);
            }
        }
        return result;
    }

    [Theory]
    [InlineData(4, 128, true, false)]
    [InlineData(4, 128, false, true)]
    [InlineData(3, 64, false, false)]
    [InlineData(3, 32, true, true)]
    [InlineData(2, -1, false, false)]
    [InlineData(8, 128, true, false)]
    public void Quantize_CorrelatedInputs_OutputErrorBelowRtn(int bits, int group, bool sym, bool actOrder)
    {
        const int rows = 32, cols = 256, tokens = 512;
        var (w, x, _) = Problem(rows, cols, tokens, seed: bits * 1000 + group);
        var o = new GptqOptions { Bits = bits, GroupSize = group, Symmetric = sym, ActOrder = actOrder };
        var gptq = GptqQuantizer.Quantize(w, rows, cols, Hessian(x, tokens, cols), o);
        double eGptq = OutputError(w, gptq.Dequantize(), x, rows, cols, tokens);
        double eRtn = OutputError(w, Rtn(w, rows, cols, o), x, rows, cols, tokens);
        output.WriteLine($"{bits}-bit g{group} sym={sym} act={actOrder}: GPTQ {eGptq:E3}, RTN {eRtn:E3} ({eGptq / eRtn:P1})");
        Assert.True(eGptq < eRtn, $"GPTQ error {eGptq} is not below RTN error {eRtn}");
    }

    [Theory]
    [InlineData(4, 128, true, false)]
    [InlineData(4, 32, false, false)]
    [InlineData(3, 64, true, true)]
    [InlineData(2, -1, false, true)]
    [InlineData(4, 48, false, false)]
    public void Quantize_BlockedLazyUpdates_EqualTheColumnByColumnReference(int bits, int group, bool sym, bool actOrder)
    {
        const int rows = 8, cols = 320, tokens = 400;
        var (w, x, _) = Problem(rows, cols, tokens, seed: 7 + bits);
        var h = Hessian(x, tokens, cols);
        var o = new GptqOptions { Bits = bits, GroupSize = group, Symmetric = sym, ActOrder = actOrder };
        var fast = GptqQuantizer.Quantize(w, rows, cols, h, o);
        var slow = GptqQuantizer.QuantizeReference(w, rows, cols, h, o);
        Assert.Equal(slow.Q, fast.Q);
        Assert.Equal(slow.Scales, fast.Scales);
        Assert.Equal(slow.Zeros, fast.Zeros);
        Assert.Equal(slow.GIdx, fast.GIdx);
    }

    // Textbook GPTQ/OBS without Cholesky: keep H⁻¹ of the not-yet-quantized columns; after quantizing column i,
    // w −= (w_i − q_i)/H⁻¹_ii · H⁻¹_{i,:} and eliminate i from H⁻¹ (Schur complement). Independent of the library's code
    // except for the grid rules.
    private static float[] ObsReference(float[] w, int rows, int cols, double[] h, GptqOptions o, int[] order)
    {
        int n = cols;
        var a = new double[n * n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) a[i * n + j] = h[order[i] * n + order[j]];
        for (int i = 0; i < n; i++) if (a[i * n + i] == 0) a[i * n + i] = 1;
        double mean = 0;
        for (int i = 0; i < n; i++) mean += a[i * n + i];
        for (int i = 0; i < n; i++) a[i * n + i] += o.Damp * mean / n;
        // Gauss-Jordan inverse.
        var inv = new double[n * n];
        for (int i = 0; i < n; i++) inv[i * n + i] = 1;
        for (int c = 0; c < n; c++)
        {
            double p = a[c * n + c];
            for (int j = 0; j < n; j++) { a[c * n + j] /= p; inv[c * n + j] /= p; }
            for (int r = 0; r < n; r++)
            {
                if (r == c) continue;
                double f = a[r * n + c];
                if (f == 0) continue;
                for (int j = 0; j < n; j++) { a[r * n + j] -= f * a[c * n + j]; inv[r * n + j] -= f * inv[c * n + j]; }
            }
        }
        int g = o.GroupSize > 0 ? o.GroupSize : n;
        var result = new float[w.Length];
        for (int r = 0; r < rows; r++)
        {
            var hinv = (double[])inv.Clone();
            var row = new double[n];
            for (int i = 0; i < n; i++) row[i] = w[r * n + order[i]];
            float scale = 1; int zero = 0;
            for (int i = 0; i < n; i++)
            {
                if (i % g == 0) (scale, zero) = GptqGrid.Fit(row.AsSpan(i, Math.Min(g, n - i)), o.MaxQ, o.Symmetric, o.MseGrid);
                double deq = scale * (GptqGrid.Quantize(row[i], scale, zero, o.MaxQ) - zero);
                result[r * n + order[i]] = (float)deq;
                double d = hinv[i * n + i], e = (row[i] - deq) / d;
                for (int j = i + 1; j < n; j++) row[j] -= e * hinv[i * n + j];
                for (int p = i + 1; p < n; p++)
                    for (int q = i + 1; q < n; q++) hinv[p * n + q] -= hinv[p * n + i] * hinv[i * n + q] / d;
            }
        }
        return result;
    }

    [Theory]
    [InlineData(4, 32, false, false)]
    [InlineData(3, 16, true, true)]
    public void Quantize_MatchesTextbookObsUpdates(int bits, int group, bool sym, bool actOrder)
    {
        const int rows = 4, cols = 64, tokens = 256;
        var (w, x, _) = Problem(rows, cols, tokens, seed: 21 + bits);
        var h = Hessian(x, tokens, cols);
        var o = new GptqOptions { Bits = bits, GroupSize = group, Symmetric = sym, ActOrder = actOrder };
        var fast = GptqQuantizer.Quantize(w, rows, cols, h, o);
        var order = fast.Permutation ?? Enumerable.Range(0, cols).ToArray();
        var reference = ObsReference(w, rows, cols, h, o, order);
        var mine = fast.Dequantize();
        for (int i = 0; i < mine.Length; i++) Assert.Equal(reference[i], mine[i], Math.Abs(reference[i]) * 1e-5f + 1e-6f);
    }

    [Fact]
    public void Quantize_ActOrderOnColumnPermutedProblem_GivesThePermutedResult()
    {
        const int rows = 6, cols = 128, tokens = 300;
        var (w, x, _) = Problem(rows, cols, tokens, seed: 11);
        var h = Hessian(x, tokens, cols);
        var o = new GptqOptions { Bits = 4, GroupSize = 32, Symmetric = false, ActOrder = true };
        var a = GptqQuantizer.Quantize(w, rows, cols, h, o);

        var sigma = Enumerable.Range(0, cols).OrderBy(_ => Guid.NewGuid()).ToArray();
        var w2 = new float[w.Length];
        var h2 = new double[h.Length];
        for (int r = 0; r < rows; r++)
            for (int k = 0; k < cols; k++) w2[r * cols + k] = w[r * cols + sigma[k]];
        for (int i = 0; i < cols; i++)
            for (int j = 0; j < cols; j++) h2[i * cols + j] = h[sigma[i] * cols + sigma[j]];
        var b = GptqQuantizer.Quantize(w2, rows, cols, h2, o);

        // Processing order is by descending H_jj, so both runs visit the same original columns in the same order.
        Assert.Equal(a.Permutation!, b.Permutation!.Select(k => sigma[k]));
        Assert.Equal(a.Scales, b.Scales);
        Assert.Equal(a.Zeros, b.Zeros);
        for (int k = 0; k < cols; k++)
        {
            Assert.Equal(a.GIdx[sigma[k]], b.GIdx[k]);
            for (int r = 0; r < rows; r++) Assert.Equal(a.Q[r * cols + sigma[k]], b.Q[r * cols + k]);
        }
        // g_idx follows the processing order: the i-th processed column is in group i / 32, and diag(H) descends.
        for (int i = 0; i < cols; i++) Assert.Equal(i / 32, a.GIdx[a.Permutation![i]]);
        for (int i = 1; i < cols; i++)
            Assert.True(h[a.Permutation![i - 1] * (cols + 1)] >= h[a.Permutation![i] * (cols + 1)]);
    }

    [Fact]
    public void Quantize_DeadColumn_QuantizesToZero()
    {
        const int rows = 4, cols = 64, tokens = 200;
        var (w, x, _) = Problem(rows, cols, tokens, seed: 3);
        for (int t = 0; t < tokens; t++) x[t * cols + 5] = 0;
        var r = GptqQuantizer.Quantize(w, rows, cols, Hessian(x, tokens, cols), new GptqOptions { Bits = 4, GroupSize = 32 });
        for (int row = 0; row < rows; row++) Assert.Equal(0f, r.Dequantize(row, 5));
    }

    [Fact]
    public void Hessian_Accumulated_EqualsTwoOverNXtX()
    {
        const int cols = 40, tokens = 50;
        var (_, x, _) = Problem(1, cols, tokens, seed: 5);
        var h = new GptqHessian(cols);
        h.Add(x.AsSpan(0, 20 * cols), 20);
        h.Add(x.AsSpan(20 * cols), 30);
        var m = h.ToMatrix();
        Assert.Equal(50, h.Count);
        for (int i = 0; i < cols; i++)
            for (int j = 0; j < cols; j++)
            {
                double s = 0, magnitude = 0;
                for (int t = 0; t < tokens; t++)
                {
                    s += (double)x[t * cols + i] * x[t * cols + j];
                    magnitude += Math.Abs((double)x[t * cols + i] * x[t * cols + j]);
                }
                // Sums within one Add are float SIMD dot products (summed in double across calls).
                Assert.Equal(2 * s / tokens, m[i * cols + j], 2 * magnitude / tokens * 1e-6);
            }
    }

    [Theory]
    [InlineData(5, 128)]
    [InlineData(4, 0)]
    public void Quantize_UnsupportedSettings_Throw(int bits, int group)
    {
        var h = new double[16];
        for (int i = 0; i < 4; i++) h[i * 5] = 1;
        var e = Assert.Throws<ArgumentException>(() => GptqQuantizer.Quantize(new float[8], 2, 4, h, new GptqOptions { Bits = bits, GroupSize = group }));
        Assert.Contains("GPTQ", e.Message);
    }
}
