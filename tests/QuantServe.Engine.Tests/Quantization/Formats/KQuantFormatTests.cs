using System.Runtime.CompilerServices;
using QuantServe.Engine.Quantization.Formats;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Tests.Quantization.Formats;

public unsafe class KQuantFormatTests
{
    public static TheoryData<string> Formats() => new(KQuantTestData.FormatNames.Where(n => TensorFormats.ForName(n) is KQuantFormat));

    public static TheoryData<string, KQuantKernelPath> FormatsAndPaths()
    {
        var d = new TheoryData<string, KQuantKernelPath>();
        foreach (var f in KQuantTestData.FormatNames.Where(n => TensorFormats.ForName(n) is KQuantFormat))
            foreach (var p in new[] { KQuantKernelPath.Vector128, KQuantKernelPath.Avx2, KQuantKernelPath.Avx512 })
                d.Add(f, p);
        return d;
    }

    [Fact]
    public void BlockStructs_SizeOf_EqualsGgmlTypeSize()
    {
        Assert.Equal(GgmlTypeInfo.Geometry(GgmlType.Q8_K)!.Value.TypeSize, Unsafe.SizeOf<BlockQ8K>());
        Assert.Equal(GgmlTypeInfo.Geometry(GgmlType.Q4_K)!.Value.TypeSize, Unsafe.SizeOf<BlockQ4K>());
        Assert.Equal(GgmlTypeInfo.Geometry(GgmlType.Q6_K)!.Value.TypeSize, Unsafe.SizeOf<BlockQ6K>());
        Assert.Equal(GgmlTypeInfo.Geometry(GgmlType.Q2_K)!.Value.TypeSize, Unsafe.SizeOf<BlockQ2K>());
        Assert.Equal(GgmlTypeInfo.Geometry(GgmlType.Q3_K)!.Value.TypeSize, Unsafe.SizeOf<BlockQ3K>());
        Assert.Equal(GgmlTypeInfo.Geometry(GgmlType.Q5_K)!.Value.TypeSize, Unsafe.SizeOf<BlockQ5K>());
        Assert.Equal(292, Q8KActivations.BlockBytes);
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void Traits_Registry_MatchGgmlGeometry(string name)
    {
        var f = KQuantTestData.Format(name);
        Assert.Same(f, TensorFormats.ForGgml(f.Ggml!.Value));
        Assert.Equal(name, f.Ggml!.Value.ToString());
        Assert.Equal(GgmlTypeInfo.Geometry(f.Ggml.Value)!.Value.TypeSize, f.BlockBytes);
        Assert.Equal(GgmlTypeInfo.RowBytes(f.Ggml.Value, 768), f.RowBytes(768));
        Assert.True(f.SupportsWidth(512));
        Assert.False(f.SupportsWidth(320));
        Assert.False(f.SupportsWidth(0));
        Assert.Equal(3 * 292, f.ActivationBytes(768));
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void QuantizeRow_WidthNotMultipleOf256_Throws(string name)
    {
        var f = KQuantTestData.Format(name);
        Assert.Throws<ArgumentException>(() => f.QuantizeRow(new float[300], new byte[1000]));
        Assert.Throws<ArgumentException>(() => f.QuantizeRow(new float[256], new byte[f.BlockBytes - 1]));
        Assert.Throws<ArgumentException>(() => f.QuantizeRow(new float[256], new byte[f.BlockBytes], new float[255]));
        Assert.Throws<ArgumentException>(() => f.RowBytes(100));
    }

    /// <summary>
    /// Round-trip budget on N(0,1) data (RMSE / σ), about 1.3× what ggml's reference quantizers reach:
    /// Q2_K 0.35, Q3_K 0.20, Q4_K 0.12, Q5_K 0.06, Q6_K 0.03.
    /// </summary>
    [Theory]
    [MemberData(nameof(Formats))]
    public void QuantizeRow_GaussianData_RmseWithinBudget(string name)
    {
        var f = KQuantTestData.Format(name);
        double budget = name switch { "Q2_K" => 0.35, "Q3_K" => 0.20, "Q4_K" => 0.12, "Q5_K" => 0.06, _ => 0.03 };
        var x = KQuantTestData.Gaussian(256 * 64, 7);
        var q = new byte[f.RowBytes(x.Length)];
        f.QuantizeRow(x, q);
        var back = new float[x.Length];
        f.DequantizeRow(q, back);
        double rmse = KQuantTestData.Rmse(x, back);
        Assert.True(rmse < budget, $"{name} RMSE {rmse:F4} over budget {budget}");
        Assert.True(rmse > budget / 4, $"{name} RMSE {rmse:F4} implausibly small");
    }

    /// <summary>
    /// ggml's test-quantize-fns on its synthetic data x[i] = 0.1 + 2·cos(i + offset), n = 4096:
    /// √Σ(x − x̂)² / n below 0.002 (0.004 for 3-bit, 0.0075 for 2-bit); |dot − dot_ref| / n below 0.02 (0.04 low-bit).
    /// </summary>
    [Theory]
    [MemberData(nameof(Formats))]
    public void QuantizeRow_GgmlTestQuantizeFnsData_WithinGgmlLimits(string name)
    {
        var f = KQuantTestData.Format(name);
        const int n = 32 * 128;
        var x = new float[n];
        var x1 = new float[n];
        for (int i = 0; i < n; i++) { x[i] = 0.1f + 2 * MathF.Cos(i); x1[i] = 0.1f + 2 * MathF.Cos(i + 1f); }
        var q = new byte[f.RowBytes(n)];
        f.QuantizeRow(x, q);
        var back = new float[n];
        f.DequantizeRow(q, back);
        double sum = 0;
        for (int i = 0; i < n; i++) sum += (double)(x[i] - back[i]) * (x[i] - back[i]);
        double err = Math.Sqrt(sum) / n;
        double limit = name == "Q2_K" ? 0.0075 : name == "Q3_K" ? 0.004 : 0.002;
        Assert.True(err < limit, $"{name} total error {err:F5} over {limit}");

        var act = new byte[f.ActivationBytes(n)];
        f.PrepareActivation(x1, act);
        float dot = DotOne(f, q, n, act, KQuantKernels.Best);
        double dotRef = 0;
        for (int i = 0; i < n; i++) dotRef += (double)x[i] * x1[i];
        double dotErr = Math.Abs(dot - dotRef) / n;
        double dotLimit = name is "Q2_K" or "Q3_K" ? 0.04 : 0.02;
        Assert.True(dotErr < dotLimit, $"{name} dot error {dotErr:F5} over {dotLimit}");
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void QuantizeRow_AllZeroAndTinyBlocks_DequantizeToZero(string name)
    {
        var f = KQuantTestData.Format(name);
        var x = new float[512];
        for (int i = 256; i < 512; i++) x[i] = 1e-20f * (i % 3 - 1);
        var q = new byte[f.RowBytes(512)];
        f.QuantizeRow(x, q);
        var back = new float[512];
        f.DequantizeRow(q, back);
        Assert.All(back, v => Assert.True(Math.Abs(v) < 1e-18, $"{v}"));
    }

    /// <summary>Non-finite input never throws, and it stays inside its own block: the other blocks quantize as if alone.</summary>
    [Theory]
    [MemberData(nameof(Formats))]
    public void QuantizeRow_NonFiniteBlock_DoesNotThrowOrLeak(string name)
    {
        var f = KQuantTestData.Format(name);
        var x = KQuantTestData.Gaussian(768, 5);
        x[300] = float.NaN;
        x[301] = float.PositiveInfinity;
        x[302] = float.NegativeInfinity;
        var q = new byte[f.RowBytes(768)];
        f.QuantizeRow(x, q);
        var alone = new byte[f.BlockBytes];
        f.QuantizeRow(x.AsSpan(512, 256), alone);
        Assert.Equal(alone, q.AsSpan(2 * f.BlockBytes).ToArray());
        var back = new float[768];
        f.DequantizeRow(q, back);
        var act = new byte[f.ActivationBytes(768)];
        f.PrepareActivation(x, act);
        DotOne(f, q, 768, act, KQuantKernels.Best);
    }

    /// <summary>With importance concentrated on even columns, the weighted (imatrix) quantizer must fit those columns better than the unweighted one.</summary>
    [Theory]
    [MemberData(nameof(Formats))]
    public void QuantizeRow_ImportanceWeights_ReduceErrorOnImportantColumns(string name)
    {
        var f = KQuantTestData.Format(name);
        var x = KQuantTestData.Gaussian(256 * 32, 11);
        var imp = new float[x.Length];
        for (int i = 0; i < x.Length; i++) imp[i] = i % 2 == 0 ? 100f : 0.01f;
        var plain = new byte[f.RowBytes(x.Length)];
        var weighted = new byte[plain.Length];
        f.QuantizeRow(x, plain);
        f.QuantizeRow(x, weighted, imp);
        var bp = new float[x.Length];
        var bw = new float[x.Length];
        f.DequantizeRow(plain, bp);
        f.DequantizeRow(weighted, bw);
        double ep = 0, ew = 0;
        for (int i = 0; i < x.Length; i += 2) { ep += (x[i] - bp[i]) * (x[i] - bp[i]); ew += (x[i] - bw[i]) * (x[i] - bw[i]); }
        Assert.True(ew < ep, $"{name}: weighted error {ew:F3} not below unweighted {ep:F3} on important columns");
    }

    /// <summary>The scalar kernel computes Σ dequant(w)·dequant(a) (checked in double against dequantized operands).</summary>
    [Theory]
    [MemberData(nameof(Formats))]
    public void DotRows_Scalar_EqualsDequantizedDot(string name)
    {
        var f = KQuantTestData.Format(name);
        const int cols = 1024, rows = 5;
        var w = KQuantTestData.Nasty(rows * cols, 3);
        var a = KQuantTestData.Nasty(cols, 4);
        var q = Quantize(f, w, rows, cols);
        var act = new byte[f.ActivationBytes(cols)];
        f.PrepareActivation(a, act);
        var aBack = new float[cols];
        Q8KActivations.Dequantize(act, aBack);
        var y = new float[rows];
        fixed (byte* pq = q)
        {
            var m = new WeightMatrix("t", f, rows, cols, pq);
            f.DotRows(m, 0, rows, act, act.Length, 1, y, rows, KQuantKernelPath.Scalar);
            var row = new float[cols];
            for (int r = 0; r < rows; r++)
            {
                m.DequantizeRow(r, row);
                double s = 0, mag = 0;
                for (int c = 0; c < cols; c++) { s += (double)row[c] * aBack[c]; mag += Math.Abs((double)row[c] * aBack[c]); }
                Assert.True(Math.Abs(y[r] - s) <= 1e-5 * mag + 1e-6, $"{name} row {r}: kernel {y[r]} vs {s}");
            }
        }
    }

    /// <summary>Every vector path equals the scalar reference for 1..4 blocks per row and several batch sizes.</summary>
    [Theory]
    [MemberData(nameof(FormatsAndPaths))]
    public void DotRows_VectorPath_EqualsScalar(string name, KQuantKernelPath path)
    {
        if (!KQuantKernels.IsSupported(path)) return;
        var f = KQuantTestData.Format(name);
        const int rows = 6;
        foreach (int nb in new[] { 1, 2, 3, 4 })
        {
            int cols = nb * 256;
            var q = Quantize(f, KQuantTestData.Nasty(rows * cols, 100 + nb), rows, cols);
            foreach (int batch in new[] { 1, 2, 5, 67 })
            {
                int stride = f.ActivationBytes(cols) + 8;
                var act = new byte[stride * batch];
                for (int b = 0; b < batch; b++)
                    f.PrepareActivation(KQuantTestData.Nasty(cols, 1000 * nb + b), act.AsSpan(b * stride, f.ActivationBytes(cols)));
                int yStride = rows + 3;
                var ys = new float[yStride * batch];
                var yv = new float[yStride * batch];
                fixed (byte* pq = q)
                {
                    var m = new WeightMatrix("t", f, rows, cols, pq);
                    f.DotRows(m, 0, rows, act, stride, batch, ys, yStride, KQuantKernelPath.Scalar);
                    f.DotRows(m, 1, 4, act, stride, batch, yv, yStride, path);
                    f.DotRows(m, 0, 1, act, stride, batch, yv, yStride, path);
                    f.DotRows(m, 4, rows, act, stride, batch, yv, yStride, path);
                }
                for (int i = 0; i < ys.Length; i++)
                    Assert.True(Math.Abs(ys[i] - yv[i]) <= 1e-5 * Math.Abs(ys[i]) + 1e-7, $"{name} {path} nb={nb} batch={batch} [{i}]: {yv[i]} vs {ys[i]}");
            }
        }
    }

    /// <summary>
    /// Prompt batches: whole 16-token tiles take the matrix-matrix kernel (Q4_K, Q6_K), leftovers the row kernels. Row
    /// ranges of 9 rows exercise its four-row groups and single-row leftovers; 16 super-blocks per row make its decoded
    /// row panels four rows tall, so the ranges cross panel edges.
    /// </summary>
    [Theory]
    [MemberData(nameof(FormatsAndPaths))]
    public void DotRows_PromptTilesAndLeftovers_EqualsScalar(string name, KQuantKernelPath path)
    {
        if (!KQuantKernels.IsSupported(path)) return;
        var f = KQuantTestData.Format(name);
        const int rows = 11;
        foreach (int nb in new[] { 1, 3, 16 })
        {
            int cols = nb * 256;
            var q = Quantize(f, KQuantTestData.Nasty(rows * cols, 300 + nb), rows, cols);
            foreach (int batch in new[] { 16, 35 })
            {
                int stride = f.ActivationBytes(cols) + 8;
                var act = new byte[stride * batch];
                for (int b = 0; b < batch; b++)
                    f.PrepareActivation(KQuantTestData.Nasty(cols, 3000 * nb + b), act.AsSpan(b * stride, f.ActivationBytes(cols)));
                int yStride = rows + 3;
                var ys = new float[yStride * batch];
                var yv = new float[yStride * batch];
                fixed (byte* pq = q)
                {
                    var m = new WeightMatrix("t", f, rows, cols, pq);
                    f.DotRows(m, 0, rows, act, stride, batch, ys, yStride, KQuantKernelPath.Scalar);
                    f.DotRows(m, 0, 9, act, stride, batch, yv, yStride, path);
                    f.DotRows(m, 9, rows, act, stride, batch, yv, yStride, path);
                }
                for (int i = 0; i < ys.Length; i++)
                    Assert.True(Math.Abs(ys[i] - yv[i]) <= 1e-5 * Math.Abs(ys[i]) + 1e-7, $"{name} {path} nb={nb} batch={batch} [{i}]: {yv[i]} vs {ys[i]}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(FormatsAndPaths))]
    public void DotRows_OneVectorAcrossManyRows_EqualsScalar(string name, KQuantKernelPath path)
    {
        // Decoding one token over whole row ranges: 4-row groups plus leftovers (ranges of 9 and 2 rows).
        if (!KQuantKernels.IsSupported(path)) return;
        var f = KQuantTestData.Format(name);
        const int rows = 11, nb = 3, cols = nb * 256;
        var q = Quantize(f, KQuantTestData.Nasty(rows * cols, 7), rows, cols);
        var act = new byte[f.ActivationBytes(cols)];
        f.PrepareActivation(KQuantTestData.Nasty(cols, 8), act);
        var ys = new float[rows];
        var yv = new float[rows];
        fixed (byte* pq = q)
        {
            var m = new WeightMatrix("t", f, rows, cols, pq);
            f.DotRows(m, 0, rows, act, act.Length, 1, ys, rows, KQuantKernelPath.Scalar);
            f.DotRows(m, 0, 9, act, act.Length, 1, yv, rows, path);
            f.DotRows(m, 9, rows, act, act.Length, 1, yv, rows, path);
        }
        for (int i = 0; i < rows; i++)
            Assert.True(Math.Abs(ys[i] - yv[i]) <= 1e-5 * Math.Abs(ys[i]) + 1e-7, $"{name} {path} row {i}: {yv[i]} vs {ys[i]}");
    }

    internal static byte[] Quantize(KQuantFormat f, float[] w, int rows, int cols)
    {
        long rb = f.RowBytes(cols);
        var q = new byte[rb * rows];
        for (int r = 0; r < rows; r++) f.QuantizeRow(w.AsSpan(r * cols, cols), q.AsSpan((int)(r * rb), (int)rb));
        return q;
    }

    private static float DotOne(KQuantFormat f, byte[] q, int cols, byte[] act, KQuantKernelPath path)
    {
        var y = new float[1];
        fixed (byte* pq = q)
            f.DotRows(new WeightMatrix("t", f, 1, cols, pq), 0, 1, act, act.Length, 1, y, 1, path);
        return y[0];
    }
}
