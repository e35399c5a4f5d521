using QuantServe.Engine.Quantization.Formats;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Tests.Quantization.Formats;

public unsafe class LegacyDotKernelTests
{
    // Seven rows split [0,1) + [1,7): exercises the four-row kernel and the single-row leftovers.
    private const int Rows = 7;

    /// <summary>Quantized weights, prepared activations and the scalar kernel's output for one shape.</summary>
    private sealed record Case(byte[] W, byte[] A, int Stride, float[] Scalar, double[] Magnitude, double[] Exact, double[] MinTerms);

    private static Case Build(LegacyQuantFormat f, int cols, int batch, int seed)
    {
        var wf = LegacyTestData.Gaussian(Rows * cols, seed);
        var w = new byte[Rows * f.RowBytes(cols)];
        for (int r = 0; r < Rows; r++) f.QuantizeRow(wf.AsSpan(r * cols, cols), w.AsSpan((int)(r * f.RowBytes(cols))));
        int stride = f.ActivationBytes(cols) + 6; // odd padding: kernels must honour the stride, not assume packing
        var a = new byte[stride * batch];
        var xs = LegacyTestData.Gaussian(batch * cols, seed + 1);
        for (int b = 0; b < batch; b++) f.PrepareActivation(xs.AsSpan(b * cols, cols), a.AsSpan(b * stride));
        var scalar = Run(f, w, cols, a, stride, batch, LegacyKernelPath.Scalar);

        // Independent float64 reference: dequantized weights · dequantized activations.
        var mag = new double[Rows * batch];
        var minTerms = new double[Rows * batch];
        var exact = new double[Rows * batch];
        var row = new float[cols];
        for (int r = 0; r < Rows; r++)
        {
            f.DequantizeRow(w.AsSpan((int)(r * f.RowBytes(cols)), (int)f.RowBytes(cols)), row);
            for (int b = 0; b < batch; b++)
            {
                var x = LegacyTestData.DequantizeActivation(a.AsSpan(b * stride), cols, f.UsesQ8_1);
                double s = 0, m = 0;
                for (int c = 0; c < cols; c++) { s += (double)row[c] * x[c]; m += Math.Abs((double)row[c] * x[c]); }
                exact[b * Rows + r] = s;
                mag[b * Rows + r] = m + 1e-30;
                if (f.UsesQ8_1)
                {
                    // Σ_blocks |m_w · d_a·Σq_a|: the part of the dot product that goes through the FP16 s of each Q8_1 block.
                    for (int i = 0; i < cols / 32; i++)
                    {
                        float mw = GgmlFp16.ToFloat(BitConverter.ToUInt16(w, (int)(r * f.RowBytes(cols)) + i * f.BlockBytes + 2));
                        double sa = 0;
                        for (int j = 0; j < 32; j++) sa += x[i * 32 + j];
                        minTerms[b * Rows + r] += Math.Abs(mw * sa);
                    }
                }
            }
        }
        return new Case(w, a, stride, scalar, mag, exact, minTerms);
    }

    private static float[] Run(LegacyQuantFormat f, byte[] w, int cols, byte[] a, int stride, int batch, LegacyKernelPath path)
    {
        var y = new float[batch * Rows];
        fixed (byte* pw = w)
        {
            var m = new WeightMatrix("test.weight", f, Rows, cols, pw);
            // Two calls on disjoint row ranges, as the thread pool would split it.
            f.DotRows(m, 0, 1, a, stride, batch, y, Rows, path);
            f.DotRows(m, 1, Rows, a, stride, batch, y, Rows, path);
        }
        return y;
    }

    [Theory]
    [MemberData(nameof(LegacyTestData.Formats), MemberType = typeof(LegacyTestData))]
    public void DotRows_EverySimdPathAllWidthsAndBatches_MatchesScalar(string name)
    {
        var f = LegacyTestData.Format(name);
        int[] batches = [1, 2, 4, 5, 7];
        for (int k = 1; k <= 1024 / 32; k++)
        {
            int cols = 32 * k;
            int batch = batches[k % batches.Length];
            var c = Build(f, cols, batch, 1000 + k);
            foreach (var path in LegacyTestData.SupportedPaths())
            {
                var y = Run(f, c.W, cols, c.A, c.Stride, batch, path);
                for (int i = 0; i < y.Length; i++)
                    Assert.True(Math.Abs(y[i] - c.Scalar[i]) <= 1e-5 * c.Magnitude[i],
                        $"{name} {path} cols={cols} batch={batch} out[{i}]: {y[i]} vs scalar {c.Scalar[i]} (|terms| {c.Magnitude[i]})");
            }
        }
    }

    [Theory]
    [MemberData(nameof(LegacyTestData.Formats), MemberType = typeof(LegacyTestData))]
    public void DotRows_PromptBatchesOfSixteenTokenTilesAndLeftovers_MatchScalar(string name)
    {
        // Batches of 16+ take the token-per-lane matrix-matrix kernel (Q4_0 on AVX-512) for whole 16-token tiles and the
        // row kernels for the leftover columns; every width 32..1024 and ragged batches check both parts and the seams.
        var f = LegacyTestData.Format(name);
        int[] batches = [16, 17, 23, 32, 33, 47];
        for (int k = 1; k <= 1024 / 32; k++)
        {
            int cols = 32 * k;
            int batch = batches[k % batches.Length];
            var c = Build(f, cols, batch, 3000 + k);
            foreach (var path in LegacyTestData.SupportedPaths())
            {
                var y = Run(f, c.W, cols, c.A, c.Stride, batch, path);
                for (int i = 0; i < y.Length; i++)
                    Assert.True(Math.Abs(y[i] - c.Scalar[i]) <= 1e-5 * c.Magnitude[i],
                        $"{name} {path} cols={cols} batch={batch} out[{i}]: {y[i]} vs scalar {c.Scalar[i]} (|terms| {c.Magnitude[i]})");
            }
        }
    }

    [Theory]
    [MemberData(nameof(LegacyTestData.Formats), MemberType = typeof(LegacyTestData))]
    public void DotRows_BatchSpanningRowPanels_MatchesOneColumnAtATime(string name)
    {
        // Wide rows make the batched loop's L1 row panels a few rows tall, so ranges [0,5) and [5,41) cross several
        // panel edges; batch 9 is two four-column tiles and one leftover column, batch 37 two 16-token tiles and five more.
        var f = LegacyTestData.Format(name);
        foreach (int batch in new[] { 9, 37 })
            BatchSpanningRowPanels(f, name, batch);
    }

    private static void BatchSpanningRowPanels(LegacyQuantFormat f, string name, int batch)
    {
        const int rows = 41, cols = 4096;
        long rowBytes = f.RowBytes(cols);
        var wf = LegacyTestData.Gaussian(rows * cols, 77);
        var w = new byte[rows * rowBytes];
        for (int r = 0; r < rows; r++) f.QuantizeRow(wf.AsSpan(r * cols, cols), w.AsSpan((int)(r * rowBytes)));
        int stride = f.ActivationBytes(cols) + 6;
        var a = new byte[stride * batch];
        var xs = LegacyTestData.Gaussian(batch * cols, 78);
        for (int b = 0; b < batch; b++) f.PrepareActivation(xs.AsSpan(b * cols, cols), a.AsSpan(b * stride));
        var rowValues = new float[cols];
        var magnitude = new double[batch * rows];
        for (int r = 0; r < rows; r++)
        {
            f.DequantizeRow(w.AsSpan((int)(r * rowBytes), (int)rowBytes), rowValues);
            for (int b = 0; b < batch; b++)
            {
                var x = LegacyTestData.DequantizeActivation(a.AsSpan(b * stride), cols, f.UsesQ8_1);
                for (int c = 0; c < cols; c++) magnitude[b * rows + r] += Math.Abs((double)rowValues[c] * x[c]);
            }
        }
        foreach (var path in LegacyTestData.SupportedPaths().Prepend(LegacyKernelPath.Scalar).Distinct())
        {
            var batched = new float[batch * rows];
            var single = new float[batch * rows];
            fixed (byte* pw = w)
            {
                var m = new WeightMatrix("test.weight", f, rows, cols, pw);
                f.DotRows(m, 0, 5, a, stride, batch, batched, rows, path);
                f.DotRows(m, 5, rows, a, stride, batch, batched, rows, path);
                for (int b = 0; b < batch; b++)
                    f.DotRows(m, 0, rows, a.AsSpan(b * stride), stride, 1, single.AsSpan(b * rows), rows, path);
            }
            for (int i = 0; i < batched.Length; i++)
                Assert.True(Math.Abs(batched[i] - single[i]) <= 1e-5 * magnitude[i] + 1e-30,
                    $"{name} {path} out[{i}] (column {i / rows}, row {i % rows}): batched {batched[i]} vs alone {single[i]}");
        }
    }

    [Theory]
    [MemberData(nameof(LegacyTestData.Formats), MemberType = typeof(LegacyTestData))]
    public void DotRows_Scalar_MatchesDequantizedFloatDot(string name)
    {
        var f = LegacyTestData.Format(name);
        foreach (int cols in new[] { 32, 96, 256, 768 })
        {
            var c = Build(f, cols, 3, cols);
            // The _1 formats use s = FP16(d·Σq) from the activation block, so their min term carries up to 2^-11 relative error.
            for (int i = 0; i < c.Scalar.Length; i++)
                Assert.True(Math.Abs(c.Scalar[i] - c.Exact[i]) <= 1e-5 * c.Magnitude[i] + Math.Pow(2, -11) * c.MinTerms[i],
                    $"{name} cols={cols} out[{i}]: {c.Scalar[i]} vs {c.Exact[i]}");
        }
    }

    [Theory]
    [MemberData(nameof(LegacyTestData.Formats), MemberType = typeof(LegacyTestData))]
    public void DotRows_ShortBuffers_ThrowArgumentException(string name)
    {
        var f = LegacyTestData.Format(name);
        var w = new byte[Rows * f.RowBytes(64)];
        var a = new byte[f.ActivationBytes(64)];
        fixed (byte* pw = w)
        {
            var m = new WeightMatrix("test.weight", f, Rows, 64, pw);
            Assert.Throws<ArgumentException>(() => f.DotRows(m, 0, Rows, a, a.Length, 2, new float[2 * Rows], Rows));
            Assert.Throws<ArgumentException>(() => f.DotRows(m, 0, Rows, a, a.Length, 1, new float[Rows - 1], Rows));
            Assert.Throws<ArgumentOutOfRangeException>(() => f.DotRows(m, 0, Rows + 1, a, a.Length, 1, new float[Rows + 1], Rows + 1));
        }
    }
}
