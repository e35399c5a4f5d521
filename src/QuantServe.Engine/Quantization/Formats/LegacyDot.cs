using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>Compile-time batch tile width for the kernels (1 or 4 activation vectors per pass over a block).</summary>
internal interface ILegacyTile { static abstract int N { get; } }

internal struct LegacyTile1 : ILegacyTile { public static int N => 1; }

internal struct LegacyTile4 : ILegacyTile { public static int N => 4; }

/// <summary>
/// The fused dot kernels shared by Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 (ggml's <c>ggml_vec_dot_*_q8_0/q8_1</c>).
/// For weight block i with scale d_w (and min m_w) and activation block i with scale d_a (and s_a = d_a·Σa):
/// <c>sumi = Σ_j (q_j − bias)·a_j</c> exactly in integers, then
/// <c>y += (d_w·d_a)·sumi</c> (+ <c>m_w·s_a</c> for the _1 formats) in float.
/// A row's block is decoded once and used for up to four activation vectors, so prompt batches reuse the decode work
/// while the row stays in L1.
/// </summary>
internal static unsafe class LegacyDot
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Half(byte* p) => GgmlFp16.ToFloat(*(ushort*)p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Half(float* table, byte* p) => table[*(ushort*)p];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int ActBytes<T>() where T : struct, ILegacyBlock => T.HasMin ? Q8Activations.Q8_1BlockBytes : Q8Activations.Q8_0BlockBytes;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int ActQs<T>() where T : struct, ILegacyBlock => T.HasMin ? 4 : 2;

    /// <summary>The float copies of the activation block scales (d, then s for Q8_1) of a prepared vector.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float* Scales<T>(byte* act, int nb) where T : struct, ILegacyBlock => (float*)(act + Q8Activations.ScalesOffset(nb, T.HasMin));

    /// <summary>Checks the arguments of <see cref="TensorFormat.DotRows"/> and runs the kernel of <paramref name="path"/>.</summary>
    public static void Rows<T>(string format, WeightMatrix w, int rowStart, int rowEnd, ReadOnlySpan<byte> activations,
        int activationStride, int batch, Span<float> y, int yStride, LegacyKernelPath path) where T : struct, ILegacyBlock
        => Rows<T>(format, w, rowStart, rowEnd, activations, activationStride, batch, y, yStride, path, default);

    /// <summary>As <see cref="Rows{T}(string, WeightMatrix, int, int, ReadOnlySpan{byte}, int, int, Span{float}, int, LegacyKernelPath)"/>
    /// with the batch's whole 16-token tiles already regrouped for <see cref="LegacyGemm"/> in <paramref name="tiles"/>
    /// (empty: the kernel regroups them itself).</summary>
    public static void Rows<T>(string format, WeightMatrix w, int rowStart, int rowEnd, ReadOnlySpan<byte> activations,
        int activationStride, int batch, Span<float> y, int yStride, LegacyKernelPath path, ReadOnlySpan<byte> tiles) where T : struct, ILegacyBlock
    {
        LegacyKernels.Check(path);
        if (w.Cols <= 0 || w.Cols % 32 != 0) throw new ArgumentException($"{w.Name}: width {w.Cols} does not fit {format} (multiple of 32)");
        if (rowStart < 0 || rowEnd > w.Rows || rowStart > rowEnd)
            throw new ArgumentOutOfRangeException(nameof(rowStart), $"{w.Name}: rows [{rowStart}, {rowEnd}) outside 0..{w.Rows}");
        if (batch <= 0 || rowStart == rowEnd) return;
        int nb = w.Cols / 32;
        int prepared = T.HasMin ? Q8Activations.Q8_1Bytes(w.Cols) : Q8Activations.Q8_0Bytes(w.Cols);
        if (activationStride < prepared && batch > 1)
            throw new ArgumentException($"{w.Name}: activation stride {activationStride} is shorter than one prepared vector ({prepared} bytes)");
        if ((long)(batch - 1) * activationStride + prepared > activations.Length)
            throw new ArgumentException($"{w.Name}: activations hold {activations.Length} bytes, too few for batch {batch}");
        if ((long)(batch - 1) * yStride + rowEnd > y.Length)
            throw new ArgumentException($"{w.Name}: output holds {y.Length} floats, too few for batch {batch}");

        fixed (byte* a = activations)
        fixed (byte* tiled = tiles)
        fixed (float* py = y)
        {
            switch (path)
            {
                case LegacyKernelPath.Avx512:
                    int gemm = 0;
                    if (batch >= LegacyGemm.Lanes && LegacyGemm.IsSupported && (typeof(T) == typeof(Q4_0Block) || typeof(T) == typeof(Q8_0Block)))
                    {
                        // Whole 16-token tiles of a prompt go through the matrix-matrix kernel, the rest through the row kernels.
                        int count = batch / LegacyGemm.Lanes;
                        byte* shared = tiles.Length >= count * LegacyGemm.TileBytes(nb) ? tiled : null;
                        if (typeof(T) == typeof(Q4_0Block)) LegacyGemm.Q4_0(w, rowStart, rowEnd, nb, a, activationStride, count, shared, py, yStride);
                        else LegacyGemm.Q8_0(w, rowStart, rowEnd, nb, a, activationStride, count, shared, py, yStride);
                        gemm = count * LegacyGemm.Lanes;
                    }
                    if (gemm < batch)
                        RowsOf<T, Avx512Kernel<T>>(w, rowStart, rowEnd, nb, a + (long)gemm * activationStride, activationStride,
                            batch - gemm, py + (long)gemm * yStride, yStride);
                    break;
                case LegacyKernelPath.Avx2: RowsOf<T, Avx2Kernel<T>>(w, rowStart, rowEnd, nb, a, activationStride, batch, py, yStride); break;
                case LegacyKernelPath.Vector128: RowsOf<T, Vector128Kernel<T>>(w, rowStart, rowEnd, nb, a, activationStride, batch, py, yStride); break;
                default: RowsOf<T, ScalarKernel<T>>(w, rowStart, rowEnd, nb, a, activationStride, batch, py, yStride); break;
            }
        }
    }

    private interface IKernel
    {
        static abstract void Tile1(byte* row, int nb, byte* act, int stride, float* result);
        static abstract void Tile4(byte* row, int nb, byte* act, int stride, float* result);

        /// <summary>Four consecutive rows (<paramref name="rowBytes"/> apart) against one activation vector.</summary>
        static abstract void Rows4(byte* row, long rowBytes, int nb, byte* act, float* result);
    }

    /// <summary>Weight bytes of one row panel of the batched loop: half of a typical 32-48 KiB L1 data cache.</summary>
    private const long PanelBytes = 16 * 1024;

    // Full optimisation from the first call: tier-0 code of these loops is ~20x slower, and there is no profile worth waiting for.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RowsOf<T, K>(WeightMatrix w, int rowStart, int rowEnd, int nb, byte* act, int stride, int batch, float* y, int yStride)
        where T : struct, ILegacyBlock where K : struct, IKernel
    {
        float* r4 = stackalloc float[4];
        byte* data = w.Data;
        long rowBytes = w.RowBytes;
        int fullTiles = batch & ~3;
        // Batch columns four at a time: each decoded weight block serves four activation vectors. Rows go in panels of
        // about 16 KiB that stay in L1 while every four-column tile (4 prepared vectors) passes over them, so the
        // activations stream from L2 once per panel instead of once per row (they outweigh a row 4·34/18 times for Q4_0).
        int panel = (int)Math.Clamp(PanelBytes / rowBytes, 1, 64);
        for (int p0 = rowStart; p0 < rowEnd && fullTiles > 0; p0 += panel)
        {
            int p1 = Math.Min(rowEnd, p0 + panel);
            for (int b = 0; b < fullTiles; b += 4)
            {
                byte* a = act + (long)b * stride;
                float* yb = y + (long)b * yStride;
                for (int r = p0; r < p1; r++)
                {
                    K.Tile4(data + r * rowBytes, nb, a, stride, r4);
                    for (int j = 0; j < 4; j++) yb[(long)j * yStride + r] = r4[j];
                }
            }
        }
        // Leftover columns (all of them when decoding one token): four rows at a time share each activation block.
        for (int b = fullTiles; b < batch; b++)
        {
            byte* a = act + (long)b * stride;
            float* yb = y + (long)b * yStride;
            int r = rowStart;
            for (; r + 4 <= rowEnd; r += 4)
            {
                K.Rows4(data + r * rowBytes, rowBytes, nb, a, r4);
                for (int j = 0; j < 4; j++) yb[r + j] = r4[j];
            }
            for (; r < rowEnd; r++)
            {
                K.Tile1(data + r * rowBytes, nb, a, stride, r4);
                yb[r] = r4[0];
            }
        }
    }

    // ---------------------------------------------------------------- scalar reference

    private struct ScalarKernel<T> : IKernel where T : struct, ILegacyBlock
    {
        public static void Rows4(byte* row, long rowBytes, int nb, byte* act, float* result)
        {
            for (int j = 0; j < 4; j++) Tile1(row + j * rowBytes, nb, act, 0, result + j);
        }

        public static void Tile1(byte* row, int nb, byte* act, int stride, float* result) => result[0] = Dot(row, nb, act);

        public static void Tile4(byte* row, int nb, byte* act, int stride, float* result)
        {
            for (int j = 0; j < 4; j++) result[j] = Dot(row, nb, act + (long)j * stride);
        }

        /// <summary>ggml's generic vec_dot: per block an exact integer sum, then sumf += (d_w·d_a)·sumi (+ m_w·s_a).</summary>
        private static float Dot(byte* row, int nb, byte* act)
        {
            byte* q = stackalloc byte[32];
            int ab = ActBytes<T>(), aq = ActQs<T>();
            float sum = 0;
            for (int i = 0; i < nb; i++)
            {
                byte* wb = row + i * T.BlockBytes;
                byte* yb = act + i * ab;
                sbyte* ys = (sbyte*)(yb + aq);
                T.Decode(wb, q);
                int sumi = 0;
                if (T.Signed)
                    for (int j = 0; j < 32; j++) sumi += (sbyte)q[j] * ys[j];
                else
                    for (int j = 0; j < 32; j++) sumi += (q[j] - T.Bias) * ys[j];
                sum += Half(wb) * Half(yb) * sumi;
                if (T.HasMin) sum += Half(wb + 2) * Half(yb + 2);
            }
            return sum;
        }
    }

    // ---------------------------------------------------------------- portable 128-bit

    private struct Vector128Kernel<T> : IKernel where T : struct, ILegacyBlock
    {
        public static void Rows4(byte* row, long rowBytes, int nb, byte* act, float* result)
        {
            for (int j = 0; j < 4; j++) Tile1(row + j * rowBytes, nb, act, 0, result + j);
        }

        public static void Tile1(byte* row, int nb, byte* act, int stride, float* result) => Tile<LegacyTile1>(row, nb, act, stride, result);

        public static void Tile4(byte* row, int nb, byte* act, int stride, float* result) => Tile<LegacyTile4>(row, nb, act, stride, result);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Tile<TB>(byte* row, int nb, byte* act, int stride, float* result) where TB : struct, ILegacyTile
        {
            int ab = ActBytes<T>();
            float* table = GgmlFp16.TablePointer;
            float* sc = Scales<T>(act, nb);
            Vector128<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
            float m0 = 0, m1 = 0, m2 = 0, m3 = 0;
            var bias = Vector128.Create((byte)T.Bias);
            for (int i = 0; i < nb; i++)
            {
                byte* wb = row + i * T.BlockBytes;
                var lo = T.Decode128(wb, out var hi);
                if (!T.Signed && T.Bias != 0) { lo -= bias; hi -= bias; }
                var w0 = lo.AsSByte();
                var w1 = hi.AsSByte();
                float dw = Half(table, wb), mw = T.HasMin ? Half(table, wb + 2) : 0;
                byte* yb = act + i * ab;
                Step(w0, w1, dw, mw, yb, sc + i, nb, ref acc0, ref m0);
                if (TB.N > 1)
                {
                    Step(w0, w1, dw, mw, yb + stride, (float*)((byte*)(sc + i) + stride), nb, ref acc1, ref m1);
                    Step(w0, w1, dw, mw, yb + 2 * stride, (float*)((byte*)(sc + i) + 2 * stride), nb, ref acc2, ref m2);
                    Step(w0, w1, dw, mw, yb + 3 * stride, (float*)((byte*)(sc + i) + 3 * stride), nb, ref acc3, ref m3);
                }
            }
            result[0] = Vector128.Sum(acc0) + m0;
            if (TB.N > 1)
            {
                result[1] = Vector128.Sum(acc1) + m1;
                result[2] = Vector128.Sum(acc2) + m2;
                result[3] = Vector128.Sum(acc3) + m3;
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Step(Vector128<sbyte> w0, Vector128<sbyte> w1, float dw, float mw, byte* yb, float* sc, int nb,
            ref Vector128<float> acc, ref float m)
        {
            var y0 = Vector128.Load((sbyte*)(yb + ActQs<T>()));
            var y1 = Vector128.Load((sbyte*)(yb + ActQs<T>() + 16));
            // Two int8·int8 products fit int16 (|p| ≤ 2·128·127); widen to int32 before adding more.
            var p0 = Vector128.WidenLower(w0) * Vector128.WidenLower(y0) + Vector128.WidenUpper(w0) * Vector128.WidenUpper(y0);
            var p1 = Vector128.WidenLower(w1) * Vector128.WidenLower(y1) + Vector128.WidenUpper(w1) * Vector128.WidenUpper(y1);
            var s = Vector128.WidenLower(p0) + Vector128.WidenUpper(p0) + Vector128.WidenLower(p1) + Vector128.WidenUpper(p1);
            acc += Vector128.ConvertToSingle(s) * Vector128.Create(dw * sc[0]);
            if (T.HasMin) m += mw * sc[nb];
        }
    }

    // ---------------------------------------------------------------- AVX2

    private struct Avx2Kernel<T> : IKernel where T : struct, ILegacyBlock
    {
        public static void Rows4(byte* row, long rowBytes, int nb, byte* act, float* result)
        {
            int ab = ActBytes<T>();
            float* table = GgmlFp16.TablePointer;
            float* sc = Scales<T>(act, nb);
            Vector256<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
            float m0 = 0, m1 = 0, m2 = 0, m3 = 0;
            for (int i = 0; i < nb; i++)
            {
                byte* yb = act + i * ab;
                var y = Vector256.Load((sbyte*)(yb + ActQs<T>()));
                float ya = sc[i], sa = T.HasMin ? sc[nb + i] : 0;
                byte* wb = row + i * T.BlockBytes;
                RowStep(wb, table, y, ya, sa, ref acc0, ref m0);
                RowStep(wb + rowBytes, table, y, ya, sa, ref acc1, ref m1);
                RowStep(wb + 2 * rowBytes, table, y, ya, sa, ref acc2, ref m2);
                RowStep(wb + 3 * rowBytes, table, y, ya, sa, ref acc3, ref m3);
            }
            result[0] = Vector256.Sum(acc0) + m0;
            result[1] = Vector256.Sum(acc1) + m1;
            result[2] = Vector256.Sum(acc2) + m2;
            result[3] = Vector256.Sum(acc3) + m3;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void RowStep(byte* wb, float* table, Vector256<sbyte> y, float ya, float sa, ref Vector256<float> acc, ref float m)
        {
            var q = T.Decode256(wb);
            var u = T.Signed ? Avx2.Abs(q.AsSByte()) : q;
            Vector256<int> s = Avx2.MultiplyAddAdjacent(Products(q, u, y), Vector256<short>.One);
            acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(s), Vector256.Create(Half(table, wb) * ya), acc);
            if (T.HasMin) m += Half(table, wb + 2) * sa;
        }

        public static void Tile1(byte* row, int nb, byte* act, int stride, float* result) => Tile<LegacyTile1>(row, nb, act, stride, result, 0);

        public static void Tile4(byte* row, int nb, byte* act, int stride, float* result) => Tile<LegacyTile4>(row, nb, act, stride, result, 0);

        /// <summary>Blocks [<paramref name="first"/>, nb) of the row; adds into <paramref name="result"/> when <paramref name="first"/> &gt; 0.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Tile<TB>(byte* row, int nb, byte* act, int stride, float* result, int first) where TB : struct, ILegacyTile
        {
            int ab = ActBytes<T>();
            float* table = GgmlFp16.TablePointer;
            float* sc = Scales<T>(act, nb);
            Vector256<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
            float m0 = 0, m1 = 0, m2 = 0, m3 = 0;
            for (int i = first; i < nb; i++)
            {
                byte* wb = row + i * T.BlockBytes;
                var q = T.Decode256(wb);
                var u = T.Signed ? Avx2.Abs(q.AsSByte()) : q;
                float dw = Half(table, wb), mw = T.HasMin ? Half(table, wb + 2) : 0;
                byte* yb = act + i * ab;
                float* ys = sc + i;
                Step(q, u, dw * ys[0], T.HasMin ? mw * ys[nb] : 0, yb, ref acc0, ref m0);
                if (TB.N > 1)
                {
                    ys = (float*)((byte*)ys + stride);
                    Step(q, u, dw * ys[0], T.HasMin ? mw * ys[nb] : 0, yb + stride, ref acc1, ref m1);
                    ys = (float*)((byte*)ys + stride);
                    Step(q, u, dw * ys[0], T.HasMin ? mw * ys[nb] : 0, yb + 2 * stride, ref acc2, ref m2);
                    ys = (float*)((byte*)ys + stride);
                    Step(q, u, dw * ys[0], T.HasMin ? mw * ys[nb] : 0, yb + 3 * stride, ref acc3, ref m3);
                }
            }
            float keep = first > 0 ? 1 : 0;
            result[0] = result[0] * keep + Vector256.Sum(acc0) + m0;
            if (TB.N > 1)
            {
                result[1] = result[1] * keep + Vector256.Sum(acc1) + m1;
                result[2] = result[2] * keep + Vector256.Sum(acc2) + m2;
                result[3] = result[3] * keep + Vector256.Sum(acc3) + m3;
            }
        }

        /// <summary>One block: integer lanes via vpmaddubsw/vpmaddwd, then acc += lanes · (d_w·d_a); m += m_w·s_a.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Step(Vector256<byte> q, Vector256<byte> u, float scale, float minTerm, byte* yb, ref Vector256<float> acc, ref float m)
        {
            var y = Vector256.Load((sbyte*)(yb + ActQs<T>()));
            Vector256<int> s = Avx2.MultiplyAddAdjacent(Products(q, u, y), Vector256<short>.One);
            acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(s), Vector256.Create(scale), acc);
            if (T.HasMin) m += minTerm;
        }

        /// <summary>
        /// Adjacent-pair sums of (q − bias)·y as int16. Signed weights use |q| and y with q's sign (vpmaddubsw needs an
        /// unsigned left operand); biased weights subtract bias·y pairs, both products staying far from int16 saturation.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Vector256<short> Products(Vector256<byte> q, Vector256<byte> u, Vector256<sbyte> y)
        {
            if (T.Signed) return Avx2.MultiplyAddAdjacent(u, Avx2.Sign(y, q.AsSByte()));
            var p = Avx2.MultiplyAddAdjacent(q, y);
            if (T.Bias != 0) p -= Avx2.MultiplyAddAdjacent(Vector256.Create((byte)T.Bias), y);
            return p;
        }
    }

    // ---------------------------------------------------------------- AVX-512

    private struct Avx512Kernel<T> : IKernel where T : struct, ILegacyBlock
    {
        /// <summary>
        /// Single-vector decode uses the 256-bit four-row kernel: on the AMD EPYC (Zen 4) CI machines 512-bit ops are
        /// double-pumped and the two-blocks-per-vector layout costs cross-lane permutes, and the AVX2 kernel measured
        /// 1.3-2.3x faster for batch 1 (768×256, all five formats); with four batch columns per block the 512-bit
        /// kernel wins (Q4_0 1.35x, Q5_0 1.5x), so <see cref="Tile4"/> stays 512-bit.
        /// </summary>
        public static void Rows4(byte* row, long rowBytes, int nb, byte* act, float* result)
            => Avx2Kernel<T>.Rows4(row, rowBytes, nb, act, result);

        public static void Tile1(byte* row, int nb, byte* act, int stride, float* result)
        {
            int done = Tile<LegacyTile1>(row, nb, act, stride, result);
            if (done < nb) Tail<LegacyTile1>(row, nb, act, stride, result, done);
        }

        public static void Tile4(byte* row, int nb, byte* act, int stride, float* result)
        {
            int done = Tile<LegacyTile4>(row, nb, act, stride, result);
            if (done < nb) Tail<LegacyTile4>(row, nb, act, stride, result, done);
        }

        // Kept out of line: merging the tail into the main loop made the JIT spill the accumulators every iteration.
        [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
        private static void Tail<TB>(byte* row, int nb, byte* act, int stride, float* result, int first) where TB : struct, ILegacyTile
            => Avx2Kernel<T>.Tile<TB>(row, nb, act, stride, result, first);

        /// <summary>Four blocks per step (two 512-bit vectors of two blocks each); returns how many blocks it covered.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static int Tile<TB>(byte* row, int nb, byte* act, int stride, float* result) where TB : struct, ILegacyTile
        {
            if (T.Signed) return SignedTile<TB>(row, nb, act, stride, result);
            int ab = ActBytes<T>();
            int bb = T.BlockBytes;
            float* table = GgmlFp16.TablePointer;
            float* sc = Scales<T>(act, nb);
            Vector512<float> a0 = default, b0 = default, a1 = default, b1 = default, a2 = default, b2 = default, a3 = default, b3 = default;
            Vector128<float> m0 = default, m1 = default, m2 = default, m3 = default;
            int i = 0;
            for (; i + 4 <= nb; i += 4)
            {
                byte* wb = row + i * bb;
                var q01 = T.Decode512(wb);
                var q23 = T.Decode512(wb + 2 * bb);
                var u01 = T.Signed ? Avx512BW.Abs(q01.AsSByte()) : q01;
                var u23 = T.Signed ? Avx512BW.Abs(q23.AsSByte()) : q23;
                var n01 = T.Signed ? Vector512.LessThan(q01.AsSByte(), Vector512<sbyte>.Zero) : default;
                var n23 = T.Signed ? Vector512.LessThan(q23.AsSByte(), Vector512<sbyte>.Zero) : default;
                var dw = Vector128.Create(Half(table, wb), Half(table, wb + bb), Half(table, wb + 2 * bb), Half(table, wb + 3 * bb));
                var mw = T.HasMin
                    ? Vector128.Create(Half(table, wb + 2), Half(table, wb + bb + 2), Half(table, wb + 2 * bb + 2), Half(table, wb + 3 * bb + 2))
                    : default;
                byte* yb = act + i * ab;
                byte* ys = (byte*)(sc + i);
                Step(q01, u01, n01, q23, u23, n23, dw, mw, yb, (float*)ys, nb, ref a0, ref b0, ref m0);
                if (TB.N > 1)
                {
                    Step(q01, u01, n01, q23, u23, n23, dw, mw, yb + stride, (float*)(ys + stride), nb, ref a1, ref b1, ref m1);
                    Step(q01, u01, n01, q23, u23, n23, dw, mw, yb + 2 * stride, (float*)(ys + 2 * stride), nb, ref a2, ref b2, ref m2);
                    Step(q01, u01, n01, q23, u23, n23, dw, mw, yb + 3 * stride, (float*)(ys + 3 * stride), nb, ref a3, ref b3, ref m3);
                }
            }
            result[0] = Vector512.Sum(a0 + b0) + Vector128.Sum(m0);
            if (TB.N > 1)
            {
                result[1] = Vector512.Sum(a1 + b1) + Vector128.Sum(m1);
                result[2] = Vector512.Sum(a2 + b2) + Vector128.Sum(m2);
                result[3] = Vector512.Sum(a3 + b3) + Vector128.Sum(m3);
            }
            return i;
        }

        /// <summary>
        /// Signed weights (Q8_0): AVX-512 has no vpsignb, so both operands are sign-extended to int16 (vpmovsxbw) and
        /// multiplied with vpmaddwd: one block fills a 512-bit vector, and its scale is broadcast from a 4-block scale vector.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static int SignedTile<TB>(byte* row, int nb, byte* act, int stride, float* result) where TB : struct, ILegacyTile
        {
            int ab = ActBytes<T>(), aq = ActQs<T>();
            int bb = T.BlockBytes;
            float* table = GgmlFp16.TablePointer;
            float* sc = Scales<T>(act, nb);
            Vector512<float> a0 = default, b0 = default, a1 = default, b1 = default, a2 = default, b2 = default, a3 = default, b3 = default;
            int i = 0;
            for (; i + 4 <= nb; i += 4)
            {
                byte* wb = row + i * bb;
                var w0 = Avx512BW.ConvertToVector512Int16(Vector256.Load((sbyte*)(wb + 2)));
                var w1 = Avx512BW.ConvertToVector512Int16(Vector256.Load((sbyte*)(wb + bb + 2)));
                var w2 = Avx512BW.ConvertToVector512Int16(Vector256.Load((sbyte*)(wb + 2 * bb + 2)));
                var w3 = Avx512BW.ConvertToVector512Int16(Vector256.Load((sbyte*)(wb + 3 * bb + 2)));
                var dw = Vector128.Create(Half(table, wb), Half(table, wb + bb), Half(table, wb + 2 * bb), Half(table, wb + 3 * bb));
                byte* yb = act + i * ab + aq;
                byte* ys = (byte*)(sc + i);
                SignedStep(w0, w1, w2, w3, dw, yb, (float*)ys, ref a0, ref b0);
                if (TB.N > 1)
                {
                    SignedStep(w0, w1, w2, w3, dw, yb + stride, (float*)(ys + stride), ref a1, ref b1);
                    SignedStep(w0, w1, w2, w3, dw, yb + 2 * stride, (float*)(ys + 2 * stride), ref a2, ref b2);
                    SignedStep(w0, w1, w2, w3, dw, yb + 3 * stride, (float*)(ys + 3 * stride), ref a3, ref b3);
                }
            }
            result[0] = Vector512.Sum(a0 + b0);
            if (TB.N > 1)
            {
                result[1] = Vector512.Sum(a1 + b1);
                result[2] = Vector512.Sum(a2 + b2);
                result[3] = Vector512.Sum(a3 + b3);
            }
            return i;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void SignedStep(Vector512<short> w0, Vector512<short> w1, Vector512<short> w2, Vector512<short> w3,
            Vector128<float> dw, byte* yqs, float* ys, ref Vector512<float> accA, ref Vector512<float> accB)
        {
            int ab = ActBytes<T>();
            var scale = (dw * Vector128.Load(ys)).ToVector256Unsafe().ToVector512Unsafe();
            var s0 = Avx512BW.MultiplyAddAdjacent(w0, Avx512BW.ConvertToVector512Int16(Vector256.Load((sbyte*)yqs)));
            var s1 = Avx512BW.MultiplyAddAdjacent(w1, Avx512BW.ConvertToVector512Int16(Vector256.Load((sbyte*)(yqs + ab))));
            var s2 = Avx512BW.MultiplyAddAdjacent(w2, Avx512BW.ConvertToVector512Int16(Vector256.Load((sbyte*)(yqs + 2 * ab))));
            var s3 = Avx512BW.MultiplyAddAdjacent(w3, Avx512BW.ConvertToVector512Int16(Vector256.Load((sbyte*)(yqs + 3 * ab))));
            accA = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(s0), Avx512F.PermuteVar16x32(scale, Vector512.Create(0)), accA);
            accB = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(s1), Avx512F.PermuteVar16x32(scale, Vector512.Create(1)), accB);
            accA = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(s2), Avx512F.PermuteVar16x32(scale, Vector512.Create(2)), accA);
            accB = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(s3), Avx512F.PermuteVar16x32(scale, Vector512.Create(3)), accB);
        }

        /// <summary>Four blocks against one activation vector: lanes 0..7 of each product belong to its first block, 8..15 to its second.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Step(Vector512<byte> q01, Vector512<byte> u01, Vector512<sbyte> n01,
            Vector512<byte> q23, Vector512<byte> u23, Vector512<sbyte> n23,
            Vector128<float> dw, Vector128<float> mw, byte* yb, float* ys, int nb,
            ref Vector512<float> accA, ref Vector512<float> accB, ref Vector128<float> m)
        {
            int ab = ActBytes<T>(), aq = ActQs<T>();
            var y01 = LegacyBits.Join(Vector256.Load((sbyte*)(yb + aq)), Vector256.Load((sbyte*)(yb + ab + aq)));
            var y23 = LegacyBits.Join(Vector256.Load((sbyte*)(yb + 2 * ab + aq)), Vector256.Load((sbyte*)(yb + 3 * ab + aq)));
            var s01 = Avx512BW.MultiplyAddAdjacent(Products(q01, u01, n01, y01), Vector512<short>.One);
            var s23 = Avx512BW.MultiplyAddAdjacent(Products(q23, u23, n23, y23), Vector512<short>.One);
            var scale = (dw * Vector128.Load(ys)).ToVector256Unsafe().ToVector512Unsafe();
            accA = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(s01), Avx512F.PermuteVar16x32(scale, Vector512.Create(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1)), accA);
            accB = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(s23), Avx512F.PermuteVar16x32(scale, Vector512.Create(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3)), accB);
            if (T.HasMin) m += mw * Vector128.Load(ys + nb);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Vector512<short> Products(Vector512<byte> q, Vector512<byte> u, Vector512<sbyte> negative, Vector512<sbyte> y)
        {
            // AVX-512 has no vpsignb: negate y where q < 0 with a mask blend.
            if (T.Signed) return Avx512BW.MultiplyAddAdjacent(u, Vector512.ConditionalSelect(negative, Vector512<sbyte>.Zero - y, y));
            var p = Avx512BW.MultiplyAddAdjacent(q, y);
            if (T.Bias != 0) p -= Avx512BW.MultiplyAddAdjacent(Vector512.Create((byte)T.Bias), y);
            return p;
        }
    }
}
