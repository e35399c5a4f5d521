using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using QuantServe.Engine.Gpu;
using QuantServe.Engine.Gpu.Cuda;
using QuantServe.Engine.Tensors;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Gpu;

/// <summary>
/// The tensor-core GEMM without a device: a scalar C# model of gemm.cu's per-thread weight slices (row, 32 columns from
/// k0) read from the exact bytes <see cref="GpuMatrix"/> uploads must equal the format's own <c>DequantizeRow</c> — so a
/// change of a resident layout that the GEMM does not follow fails here, in CI — plus the launch plan. On a GPU the kernels themselves run against the CPU reference (<c>gpu bench --gemm</c>).
/// </summary>
public unsafe class GpuGemmTests
{
    private static float Half(byte[] b, long offset) => (float)BitConverter.ToHalf(b, (int)offset);
    private static float Single(byte[] b, long offset) => BitConverter.ToSingle(b, (int)offset);

    /// <summary>What the load/put pair of gemm.cu's slice struct for <paramref name="kind"/> produces (before F16 rounding).</summary>
    private static void Slice(GpuKernelKind kind, byte[] host, GpuMat m, int row, int k0, float[] lut, Span<float> dst)
    {
        long q = (long)m.Q + row * m.QStride, s = (long)m.S + row * m.SStride;
        for (int e = 0; e < 32; e++)
        {
            int k = k0 + e;
            dst[e] = kind switch
            {
                GpuKernelKind.F16 => k / 8 < m.Units ? Half(host, q + k * 2L) : 0,
                GpuKernelKind.Q8_0 => k0 / 32 < m.Units ? Half(host, s + k0 / 32 * 2) * (sbyte)host[q + k0 / 32 * 32 + e] : 0,
                GpuKernelKind.Q4_0 => k0 / 32 < m.Units ? Half(host, s + k0 / 32 * 2) * (((host[q + k0 / 32 * 16 + e % 16] >> (e < 16 ? 0 : 4)) & 15) - 8f) : 0,
                GpuKernelKind.Int4 => k0 / 32 < m.Units
                    ? Single(host, s + k0 / m.Group * 4) * (((host[q + k0 / 32 * 16 + e % 16] >> (e < 16 ? 0 : 4)) & 15)
                        - (m.Z != 0 ? host[(long)m.Z + row * (m.SStride / 4) + k0 / m.Group] : 8f))
                    : 0,
                GpuKernelKind.Int8 => k / 16 < m.Units
                    ? Single(host, s + k / 16 * 16 / m.Group * 4) * (host[q + k] - (m.Z != 0 ? host[(long)m.Z + row * (m.SStride / 4) + k / 16 * 16 / m.Group] : 128f))
                    : 0,
                GpuKernelKind.Q4_K => Q4K(host, q, s, m, k0, e),
                GpuKernelKind.Q5_K => Q5K(host, q, s, m, k0, e),
                GpuKernelKind.Q6_K => Q6K(host, q, s, m, k0, e),
                GpuKernelKind.Codebook => k0 / 64 < m.Units ? Single(host, s + k0 / 64 * 4) * lut[(host[q + k0 / 64 * 32 + e] >> (4 * ((k0 >> 5) & 1))) & 15] : 0,
                _ => throw new ArgumentOutOfRangeException(nameof(kind)),
            };
        }
    }

    // Q4_K repacked at upload: 16-byte piece k0 / 32 (byte j: element j low nibble, j + 16 high), header of super-block
    // k0 / 256 at s (Q4KRepack.HeaderScale: the scale bytes read as gemv.cu's q4k_scale reads them).
    private static float Q4K(byte[] b, long q, long s, GpuMat m, int k0, int e)
    {
        int u = k0 / 32;
        if (u >= m.Units) return 0;
        Q4KRepack.HeaderScale(b.AsSpan((int)(s + (u >> 3) * 16), 16), u & 7, out float d, out float mn);
        int code = (b[q + 16 * u + e % 16] >> (e < 16 ? 0 : 4)) & 15;
        return d * code - mn;
    }

    // Q5_K and Q6_K repacked at upload: the repack's own reading of a row's codes and scales (Q5KRepack / Q6KRepack.Dequantize).
    private static float Q5K(byte[] b, long q, long s, GpuMat m, int k0, int e)
    {
        if (k0 / 32 >= m.Units) return 0;
        var row = new float[m.Units * 32];
        Q5KRepack.Dequantize(b.AsSpan((int)q, (int)m.QStride), b.AsSpan((int)s, (int)m.SStride), row);
        return row[k0 + e];
    }

    private static float Q6K(byte[] b, long q, long s, GpuMat m, int k0, int e)
    {
        if (k0 / 32 >= m.Units) return 0;
        var row = new float[m.Units * 32];
        Q6KRepack.Dequantize(b.AsSpan((int)q, (int)m.QStride), b.AsSpan((int)s, (int)m.SStride), row);
        return row[k0 + e];
    }

    [Theory]
    [InlineData("F16", 800)]
    [InlineData("Q8_0", 800)]
    [InlineData("Q4_0", 800)]
    [InlineData("Q4_K", 768)]
    [InlineData("Q5_K", 768)]
    [InlineData("Q6_K", 768)]
    [InlineData("int4-g128", 896)]
    [InlineData("int4-g64-asym", 896)]
    [InlineData("int4", 800)]
    [InlineData("int8", 800)]
    [InlineData("int8-g16", 800)]
    [InlineData("int8-asym", 896)]
    [InlineData("nf4", 800)]
    [InlineData("nf4-dq", 896)]
    [InlineData("fp4", 800)]
    [InlineData("Q4_1", 800)]
    [InlineData("Q3_K", 768)]
    public void SliceModel_EveryKTileOfTheUploadedLayout_EqualsDequantizeRow(string name, int cols)
    {
        var format = TensorFormats.ForName(name)!;
        const int rows = 5;
        var (w, mem) = GpuBench.RandomMatrix(format, rows, cols, 3);
        try
        {
            var (host, mat, _, _, kind, _) = GpuMatrix.HostLayout(w);
            float[] lut = name == "fp4" ? QuantServe.Engine.Quantization.Formats.CodebookFormat.Fp4.Values.ToArray() : QuantServe.Engine.Quantization.Formats.CodebookFormat.Nf4.Values.ToArray();
            var row = new float[cols];
            var slice = new float[32];
            int kTiles = (cols + GpuGemm.TileK - 1) / GpuGemm.TileK;
            for (int r = 0; r < rows; r++)
            {
                w.DequantizeRow(r, row);
                // A fallback format was rounded to F16 at upload: compare with that rounding.
                if (kind == GpuKernelKind.F16 && format.Ggml != GgmlType.F16) for (int c = 0; c < cols; c++) row[c] = (float)(Half)row[c];
                float scale = row.Max(Math.Abs);
                for (int k0 = 0; k0 < kTiles * GpuGemm.TileK; k0 += 32)
                {
                    Slice(kind, host, mat, r, k0, lut, slice);
                    for (int e = 0; e < 32; e++)
                    {
                        // Past the width a block's padding codes may decode to anything finite: the activations there are zero.
                        if (k0 + e >= cols) Assert.True(float.IsFinite(slice[e]), $"{name} row {r} padding column {k0 + e}: {slice[e]}");
                        else Assert.True(Math.Abs(slice[e] - row[k0 + e]) <= 1e-6f * scale, $"{name} row {r} column {k0 + e}: slice {slice[e]}, DequantizeRow {row[k0 + e]}");
                    }
                }
            }
        }
        finally { NativeMemory.AlignedFree((void*)mem); }
    }

    [Theory]
    [InlineData("Q8_0", 800)]
    [InlineData("Q4_0", 800)]
    [InlineData("Q4_K", 768)]
    [InlineData("Q5_K", 768)]
    [InlineData("Q6_K", 768)]
    [InlineData("int4-g128", 896)]
    [InlineData("int4-g64-asym", 896)]
    public void SliceModel_StackedLayoutAndItsViews_EqualEachPartsDequantizeRow(string name, int cols)
    {
        var format = TensorFormats.ForName(name)!;
        int[] partRows = [5, 3, 2];
        var made = partRows.Select((r, i) => GpuBench.RandomMatrix(format, r, cols, (ulong)(11 + i))).ToArray();
        try
        {
            var parts = made.Select(m => m.Item1).ToArray();
            var (host, stacked, views, _) = GpuMatrix.HostStacked(parts);
            var kind = GpuMatrix.KernelFor(format, cols)!.Value;
            // The GEMM takes its K extent from Cols: a stacked matrix without it multiplies nothing.
            Assert.Equal(cols, stacked.Cols);
            var row = new float[cols];
            var slice = new float[32];
            int r0 = 0;
            for (int p = 0; p < parts.Length; p++)
            {
                Assert.Equal(cols, views[p].Cols);
                for (int r = 0; r < partRows[p]; r++)
                {
                    parts[p].DequantizeRow(r, row);
                    float scale = row.Max(Math.Abs);
                    foreach (var (mat, at) in new[] { (stacked, r0 + r), (views[p], r) })
                        for (int k0 = 0; k0 < cols; k0 += 32)
                        {
                            Slice(kind, host, mat, at, k0, [], slice);
                            for (int e = 0; e < 32 && k0 + e < cols; e++)
                                Assert.True(Math.Abs(slice[e] - row[k0 + e]) <= 1e-6f * scale, $"{name} part {p} row {r} column {k0 + e}: slice {slice[e]}, DequantizeRow {row[k0 + e]}");
                        }
                }
                r0 += partRows[p];
            }
        }
        finally { foreach (var m in made) NativeMemory.AlignedFree((void*)m.Item2); }
    }

    [Theory]
    [InlineData(16, 2048, 2048)]
    [InlineData(512, 2048, 2048)]
    [InlineData(512, 5632, 2048)]
    [InlineData(512, 2048, 5632)]
    [InlineData(77, 1000, 1280)]
    [InlineData(20, 32000, 288)]
    [InlineData(256, 256, 64)]
    public void Plan_AnyShape_CoversEveryKTileWithAnInstantiatedTile(int tokens, int rows, int cols)
    {
        foreach (bool split in (bool[])[false, true])
        {
            var (bm, splits, per) = GpuGemm.Plan(tokens, rows, cols, 132, split);
            int kTiles = (cols + GpuGemm.TileK - 1) / GpuGemm.TileK;
            Assert.Contains(bm, split ? [32, 64] : GpuGemm.TokenTiles);
            Assert.True(splits * per >= kTiles && (splits - 1) * per < kTiles, $"{splits} splits of {per} tiles for {kTiles}");
            Assert.True(bm <= Math.Max(32, (tokens + 31) & ~31));
        }
    }

    [Fact]
    public void Plan_SixteenTokensOnFewRowTiles_SplitsK()
    {
        // 16 row tiles alone would leave most of 132 SMs idle.
        var (bm, splits, _) = GpuGemm.Plan(16, 2048, 2048, 132, false);
        Assert.Equal(32, bm);
        Assert.True(splits >= 8);
    }

    [Fact]
    public void Source_GemmKernels_ExistForEveryKindAndTile()
    {
        var src = GpuKernels.Source();
        var names = Regex.Matches(src, @"^GEMM_KERNEL\((\w+),", RegexOptions.Multiline).Select(m => m.Groups[1].Value).ToHashSet();
        foreach (Match m in Regex.Matches(src, @"^DEFINE_GEMM\((\w+),", RegexOptions.Multiline))
            foreach (int bm in GpuGemm.TokenTiles) names.Add($"{m.Groups[1].Value}_{bm}");
        foreach (GpuKernelKind kind in Enum.GetValues<GpuKernelKind>().Where(GpuGemm.Handles))
        {
            foreach (int bm in GpuGemm.TokenTiles) Assert.Contains(GpuGemm.KernelName(kind, bm, false), names);
            if (kind == GpuKernelKind.F16)
                foreach (int bm in (int[])[32, 64]) Assert.Contains(GpuGemm.KernelName(kind, bm, true), names);
        }
        Assert.Contains("prefill_attention", src);
    }

    [GpuFact]
    public void Gemm_EveryKernelFormat_MatchesTheCpuReference()
    {
        using var backend = CudaBackend.Open(0);
        foreach (var name in (string[])["Q4_K", "Q6_K", "Q8_0", "Q4_0", "Q5_K", "int4-g128", "int4-g64-asym", "int8", "nf4", "F16", "Q4_1"])
        {
            var r = GpuPrefillBench.Gemm(backend, TensorFormats.ForName(name)!, 300, 1280, 77, 1);
            Assert.True(r.MaxRelError < 5e-3, $"{r.Format}: {r.MaxRelError}");
        }
    }

    [GpuFact]
    public void Gemm_StackedMatrixAndViewsIntoStridedRows_MatchTheCpuAndLeaveTheGapsAlone()
    {
        using var backend = CudaBackend.Open(0);
        var d = backend.Device;
        var k = backend.Kernels;
        Assert.NotNull(k.Gemm);
        var format = TensorFormats.ForName("Q4_0")!;
        const int cols = 2048, tokens = 16, ys = 1024;
        int[] partRows = [256, 128, 128];
        // The 128-row views split K, so each zeroes its output first: only its own cells of the strided rows.
        Assert.True(GpuGemm.Plan(tokens, 128, cols, d.Info.Multiprocessors, false).Splits > 1);
        var made = partRows.Select((r, i) => GpuBench.RandomMatrix(format, r, cols, (ulong)(21 + i))).ToArray();
        var parts = made.Select(m => m.Item1).ToArray();
        var (stacked, views) = GpuMatrix.UploadStacked(d, "qkv", parts);
        try
        {
            var rng = new Random(5);
            var x = new float[tokens * cols];
            for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
            var sentinel = Enumerable.Repeat(7f, tokens * ys).ToArray();
            using var dx = d.Allocate(x.Length * 4L);
            using var dyStacked = d.Allocate(sentinel.Length * 4L);
            using var dyViews = d.Allocate(sentinel.Length * 4L);
            d.Upload<float>(x, dx.Pointer);
            d.Upload<float>(sentinel, dyStacked.Pointer);
            d.Upload<float>(sentinel, dyViews.Pointer);
            k.Gemv(stacked, dx.Pointer, cols, dyStacked.Pointer, ys, tokens, false);
            for (int p = 0, r0 = 0; p < parts.Length; r0 += partRows[p], p++)
                k.Gemv(views[p], dx.Pointer, cols, dyViews.Pointer + (ulong)(r0 * 4), ys, tokens, false);
            var yStacked = new float[sentinel.Length];
            var yViews = new float[sentinel.Length];
            d.Download(dyStacked.Pointer, yStacked.AsSpan());
            d.Download(dyViews.Pointer, yViews.AsSpan());

            var row = new float[cols];
            double maxErr = 0, maxRef = 0;
            for (int p = 0, r0 = 0; p < parts.Length; r0 += partRows[p], p++)
                for (int r = 0; r < partRows[p]; r++)
                {
                    parts[p].DequantizeRow(r, row);
                    for (int t = 0; t < tokens; t++)
                    {
                        double s = 0;
                        for (int c = 0; c < cols; c++) s += (double)row[c] * x[t * cols + c];
                        maxRef = Math.Max(maxRef, Math.Abs(s));
                        maxErr = Math.Max(maxErr, Math.Max(Math.Abs(s - yStacked[t * ys + r0 + r]), Math.Abs(s - yViews[t * ys + r0 + r])));
                    }
                }
            Assert.True(maxErr <= 5e-3 * maxRef, $"max error {maxErr} of {maxRef}");
            for (int t = 0; t < tokens; t++)
                for (int c = 512; c < ys; c++)
                {
                    Assert.Equal(7f, yStacked[t * ys + c]);
                    Assert.Equal(7f, yViews[t * ys + c]);
                }
        }
        finally
        {
            stacked.Dispose();
            foreach (var m in made) NativeMemory.AlignedFree((void*)m.Item2);
        }
    }
}
