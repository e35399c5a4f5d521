using QuantServe.Engine.Kernels.Cpu;
using QuantServe.Engine.Quantization.Formats;
using QuantServe.Engine.Tensors;
using QuantServe.Engine.Tests.Quantization.Formats;

namespace QuantServe.Engine.Tests.Kernels;

/// <summary>
/// Prompt batches regroup their activations into matrix–matrix tiles once per multiply (<see cref="TensorFormat.TileActivations"/>)
/// and every thread's rows read the shared tiles (<see cref="TensorFormat.DotRowsTiled"/>): the results must be exactly
/// those of <see cref="TensorFormat.DotRows"/>, which regroups on its own.
/// </summary>
public unsafe class MatMulTileTests
{
    public static TheoryData<string> TiledFormats => new(["Q4_0", "Q8_0", "Q4_K", "Q6_K", "Q5_K", "Q4_1"]);

    private static byte[] Quantize(TensorFormat f, int rows, int cols, int seed)
    {
        var w = KQuantTestData.Nasty(rows * cols, seed);
        long rowBytes = f.RowBytes(cols);
        var q = GC.AllocateArray<byte>(checked((int)(rowBytes * rows)), pinned: true);
        for (int r = 0; r < rows; r++)
        {
            var src = w.AsSpan(r * cols, cols);
            var dst = q.AsSpan((int)(r * rowBytes), (int)rowBytes);
            if (f is KQuantFormat k) k.QuantizeRow(src, dst);
            else ((LegacyQuantFormat)f).QuantizeRow(src, dst);
        }
        return q;
    }

    [Theory]
    [MemberData(nameof(TiledFormats))]
    public void DotRowsTiled_RegroupedOnce_EqualsDotRowsExactly(string name)
    {
        var f = TensorFormats.ForName(name)!;
        foreach (int cols in new[] { 256, 768 })
            foreach (int rows in new[] { 1, 7, 13 })
            {
                var q = Quantize(f, rows, cols, 17 * rows + cols);
                foreach (int batch in new[] { 15, 16, 35, 64 })
                {
                    int actBytes = f.ActivationBytes(cols), stride = actBytes + 24;
                    var act = new byte[stride * batch];
                    for (int b = 0; b < batch; b++)
                        f.PrepareActivation(KQuantTestData.Nasty(cols, 900 + b), act.AsSpan(b * stride, actBytes));
                    int tileTokens = f.TileTokens;
                    int tiles = tileTokens > 0 ? batch / tileTokens : 0;
                    long tileBytes = f.TileBytes(cols);
                    var tileData = new byte[tiles * tileBytes];
                    for (int k = 0; k < tiles; k++)
                        f.TileActivations(act.AsSpan(k * tileTokens * stride), stride, cols, tileData.AsSpan((int)(k * tileBytes), (int)tileBytes));

                    int yStride = rows + 5;
                    var expected = new float[yStride * batch];
                    var actual = new float[yStride * batch];
                    fixed (byte* pq = q)
                    {
                        var m = new WeightMatrix("t", f, rows, cols, pq);
                        // Same row ranges on both sides: the legacy row kernels group rows, so a range's float order depends on it.
                        int split = rows / 2;
                        f.DotRows(m, 0, split, act, stride, batch, expected, yStride);
                        f.DotRows(m, split, rows, act, stride, batch, expected, yStride);
                        f.DotRowsTiled(m, 0, split, act, stride, batch, tileData, actual, yStride);
                        f.DotRowsTiled(m, split, rows, act, stride, batch, tileData, actual, yStride);
                    }
                    Assert.Equal(expected, actual);
                }
            }
    }

    [Fact]
    public void TileTokens_FormatsWithPromptKernels_AreSixteenWhereTheCpuRunsThem()
    {
        Assert.Equal(0, TensorFormats.ForName("Q4_1")!.TileTokens);
        Assert.Equal(0, TensorFormats.ForName("Q5_K")!.TileTokens);
        Assert.Equal(LegacyKernels.Best == LegacyKernelPath.Avx512 && LegacyGemm.IsSupported ? 16 : 0, Q4_0Format.Instance.TileTokens);
        Assert.Equal(KQuantGemm.IsSupported && KQuantKernels.Best != KQuantKernelPath.Scalar ? 16 : 0, Q4KFormat.Instance.TileTokens);
        Assert.True(Q6KFormat.Instance.SharesActivations(Q4KFormat.Instance));
        Assert.False(Q4_0Format.Instance.SharesActivations(Q8_0Format.Instance));
    }

    /// <summary>q (Q4_K), k (Q4_K), v (Q6_K) fused over one prompt batch on two threads: the Q6_K matrix reuses the Q4_K
    /// activations and tiles; each output must equal that matrix's own <see cref="TensorFormat.DotRows"/> exactly.</summary>
    [Fact]
    public void Multiply_FusedKQuantsOnTwoThreads_EqualsEachMatrixAlone()
    {
        const int cols = 512, batch = 37;
        (TensorFormat f, int rows)[] shapes = [(Q4KFormat.Instance, 24), (Q4KFormat.Instance, 10), (Q6KFormat.Instance, 13)];
        var data = shapes.Select((s, i) => Quantize(s.f, s.rows, cols, 40 + i)).ToArray();
        var x = KQuantTestData.Nasty(batch * cols, 77);
        var outputs = shapes.Select(s => new float[batch * s.rows]).ToArray();
        using var pool = new WorkerPool(2);
        var mm = new MatMul(pool);
        fixed (byte* p0 = data[0])
        fixed (byte* p1 = data[1])
        fixed (byte* p2 = data[2])
        {
            var w = new[]
            {
                new WeightMatrix("q", shapes[0].f, shapes[0].rows, cols, p0),
                new WeightMatrix("k", shapes[1].f, shapes[1].rows, cols, p1),
                new WeightMatrix("v", shapes[2].f, shapes[2].rows, cols, p2),
            };
            mm.Multiply(x, batch, cols, w[0], outputs[0], w[0].Rows, w[1], outputs[1], w[1].Rows, w[2], outputs[2], w[2].Rows);
            for (int i = 0; i < 3; i++)
            {
                var f = w[i].Format;
                int actBytes = f.ActivationBytes(cols);
                var act = new byte[actBytes * batch];
                for (int b = 0; b < batch; b++) f.PrepareActivation(x.AsSpan(b * cols, cols), act.AsSpan(b * actBytes, actBytes));
                var expected = new float[batch * w[i].Rows];
                f.DotRows(w[i], 0, w[i].Rows, act, actBytes, batch, expected, w[i].Rows);
                Assert.Equal(expected, outputs[i]);
            }
        }
    }
}
