using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using QuantServe.Engine.Kernels.Cpu;

namespace QuantServe.Engine.Tensors.Formats;

/// <summary>
/// Dot-product kernels for rows stored as F32/F16/BF16 against F32 activations, written once over a vector width
/// (<see cref="IFloatSimd{TV}"/>) and an element decoder (<see cref="IElementDecoder"/>).
/// <para>Math: <c>y[b·yStride + r] = Σ_c W[r,c]·x_b[c]</c>, accumulated in F32 with fused multiply-add, lane-wise over
/// the vector part and sequentially over the scalar tail; the scalar path accumulates strictly left to right.</para>
/// <para>Blocking: with one activation (decoding) four rows share each activation load. With several activations a
/// block of four rows is decoded once into per-thread F32 scratch and multiplied against four activations at a time
/// (4×4 register tile), so each weight is decoded once per call and each activation load feeds four rows.</para>
/// <para>The kernels are compiled fully optimised on first call (AggressiveOptimization): tier-0 code of generic vector
/// methods is an order of magnitude slower, and the first seconds of a benchmark or a server would run it.</para>
/// </summary>
internal static unsafe class FloatDotKernels
{
    private const int RowBlock = 4;

    [ThreadStatic] private static float[]? _scratch;

    /// <summary>The kernel on <paramref name="path"/>; rows [rowStart, rowEnd) of <paramref name="w"/>, activations of <c>w.Cols</c> floats at byte stride <paramref name="actStride"/>.</summary>
    public static void DotRows<TDec>(SimdPath path, WeightMatrix w, int rowStart, int rowEnd, byte* act, int actStride, int batch, float* y, int yStride)
        where TDec : IElementDecoder
    {
        switch (path)
        {
            case SimdPath.V512: Run<Simd512, Vector512<float>, TDec>(w, rowStart, rowEnd, act, actStride, batch, y, yStride); break;
            case SimdPath.V256: Run<Simd256, Vector256<float>, TDec>(w, rowStart, rowEnd, act, actStride, batch, y, yStride); break;
            case SimdPath.V128: Run<Simd128, Vector128<float>, TDec>(w, rowStart, rowEnd, act, actStride, batch, y, yStride); break;
            default: RunScalar<TDec>(w, rowStart, rowEnd, act, actStride, batch, y, yStride); break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RunScalar<TDec>(WeightMatrix w, int rowStart, int rowEnd, byte* act, int actStride, int batch, float* y, int yStride)
        where TDec : IElementDecoder
    {
        int n = w.Cols;
        for (int r = rowStart; r < rowEnd; r++)
        {
            byte* row = w.Data + r * w.RowBytes;
            for (int b = 0; b < batch; b++)
            {
                float* x = (float*)(act + (long)b * actStride);
                float sum = 0;
                for (int c = 0; c < n; c++) sum += TDec.Scalar(row, c) * x[c];
                y[(long)b * yStride + r] = sum;
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Run<TS, TV, TDec>(WeightMatrix w, int rowStart, int rowEnd, byte* act, int actStride, int batch, float* y, int yStride)
        where TS : IFloatSimd<TV> where TV : struct where TDec : IElementDecoder
    {
        int n = w.Cols;
        long rb = w.RowBytes;
        int xs = actStride / sizeof(float);
        bool convert = batch >= RowBlock && typeof(TDec) != typeof(F32Decoder);
        if (batch < RowBlock || !convert)
        {
            int r = rowStart;
            if (batch < RowBlock)
            {
                for (; r + RowBlock <= rowEnd; r += RowBlock)
                    for (int b = 0; b < batch; b++)
                        Dot4x1<TS, TV, TDec>(w.Data + r * rb, rb, (float*)(act + (long)b * actStride), n, y + (long)b * yStride + r);
                for (; r < rowEnd; r++)
                    for (int b = 0; b < batch; b++)
                        y[(long)b * yStride + r] = Dot1x1<TS, TV, TDec>(w.Data + r * rb, (float*)(act + (long)b * actStride), n);
                return;
            }
            Tiles<TS, TV, TDec>(w.Data, rb, rowStart, rowEnd, (float*)act, xs, batch, n, y, yStride, rowOffset: 0);
            return;
        }

        // Decode a block of rows once into F32 scratch, then multiply it against the whole batch.
        float[] scratch = _scratch is { } s && s.Length >= RowBlock * n ? s : (_scratch = GC.AllocateUninitializedArray<float>(RowBlock * Math.Max(n, 1024), pinned: true));
        fixed (float* buf = scratch)
        {
            for (int r0 = rowStart; r0 < rowEnd; r0 += RowBlock)
            {
                int rows = Math.Min(RowBlock, rowEnd - r0);
                for (int i = 0; i < rows; i++) Decode<TS, TV, TDec>(w.Data + (r0 + i) * rb, buf + i * n, n);
                Tiles<TS, TV, F32Decoder>((byte*)buf, (long)n * sizeof(float), 0, rows, (float*)act, xs, batch, n, y, yStride, rowOffset: r0);
            }
        }
    }

    /// <summary>Rows [r0, r1) of the matrix at <paramref name="data"/> times every activation; outputs go to column rowOffset + r.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tiles<TS, TV, TDec>(byte* data, long rb, int r0, int r1, float* x, int xs, int batch, int n, float* y, int yStride, int rowOffset)
        where TS : IFloatSimd<TV> where TV : struct where TDec : IElementDecoder
    {
        float* t = stackalloc float[16];
        int r = r0;
        for (; r + RowBlock <= r1; r += RowBlock)
        {
            byte* w = data + r * rb;
            int b = 0;
            for (; b + 4 <= batch; b += 4)
            {
                Dot4x4<TS, TV, TDec>(w, rb, x + (long)b * xs, xs, n, t);
                for (int j = 0; j < 4; j++)
                    for (int i = 0; i < 4; i++) y[(long)(b + j) * yStride + rowOffset + r + i] = t[j * 4 + i];
            }
            for (; b < batch; b++) Dot4x1<TS, TV, TDec>(w, rb, x + (long)b * xs, n, y + (long)b * yStride + rowOffset + r);
        }
        for (; r < r1; r++)
        {
            byte* w = data + r * rb;
            int b = 0;
            for (; b + 4 <= batch; b += 4)
            {
                Dot1x4<TS, TV, TDec>(w, x + (long)b * xs, xs, n, t);
                for (int j = 0; j < 4; j++) y[(long)(b + j) * yStride + rowOffset + r] = t[j];
            }
            for (; b < batch; b++) y[(long)b * yStride + rowOffset + r] = Dot1x1<TS, TV, TDec>(w, x + (long)b * xs, n);
        }
    }

    /// <summary>
    /// Decodes one vector of elements. Dispatching on typeof(TV) here, instead of through a generic method of
    /// <see cref="IFloatSimd{TV}"/>, keeps the call resolvable at JIT time (a generic virtual method would be looked up at
    /// run time on every call); the branches fold away in each specialisation.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TV Load<TV, TDec>(byte* row, int i) where TV : struct where TDec : IElementDecoder
    {
        if (typeof(TV) == typeof(Vector512<float>)) return Unsafe.BitCast<Vector512<float>, TV>(TDec.Load512(row, i));
        if (typeof(TV) == typeof(Vector256<float>)) return Unsafe.BitCast<Vector256<float>, TV>(TDec.Load256(row, i));
        if (typeof(TV) == typeof(Vector128<float>)) return Unsafe.BitCast<Vector128<float>, TV>(TDec.Load128(row, i));
        throw new NotSupportedException(typeof(TV).Name);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Decode<TS, TV, TDec>(byte* row, float* dst, int n)
        where TS : IFloatSimd<TV> where TV : struct where TDec : IElementDecoder
    {
        int c = 0;
        for (; c + TS.Count <= n; c += TS.Count) TS.Store(Load<TV, TDec>(row, c), dst + c);
        for (; c < n; c++) dst[c] = TDec.Scalar(row, c);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Dot1x1<TS, TV, TDec>(byte* w, float* x, int n)
        where TS : IFloatSimd<TV> where TV : struct where TDec : IElementDecoder
    {
        TV a0 = TS.Zero, a1 = TS.Zero;
        int c = 0, k = TS.Count;
        for (; c + 2 * k <= n; c += 2 * k)
        {
            a0 = TS.MultiplyAdd(Load<TV, TDec>(w, c), TS.Load(x + c), a0);
            a1 = TS.MultiplyAdd(Load<TV, TDec>(w, c + k), TS.Load(x + c + k), a1);
        }
        if (c + k <= n)
        {
            a0 = TS.MultiplyAdd(Load<TV, TDec>(w, c), TS.Load(x + c), a0);
            c += k;
        }
        float sum = TS.Sum(a0) + TS.Sum(a1);
        for (; c < n; c++) sum += TDec.Scalar(w, c) * x[c];
        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot4x1<TS, TV, TDec>(byte* w, long rb, float* x, int n, float* y)
        where TS : IFloatSimd<TV> where TV : struct where TDec : IElementDecoder
    {
        byte* w0 = w, w1 = w + rb, w2 = w + 2 * rb, w3 = w + 3 * rb;
        TV a0 = TS.Zero, a1 = TS.Zero, a2 = TS.Zero, a3 = TS.Zero;
        int c = 0;
        for (; c + TS.Count <= n; c += TS.Count)
        {
            TV xv = TS.Load(x + c);
            a0 = TS.MultiplyAdd(Load<TV, TDec>(w0, c), xv, a0);
            a1 = TS.MultiplyAdd(Load<TV, TDec>(w1, c), xv, a1);
            a2 = TS.MultiplyAdd(Load<TV, TDec>(w2, c), xv, a2);
            a3 = TS.MultiplyAdd(Load<TV, TDec>(w3, c), xv, a3);
        }
        var sums = TS.Sum4(a0, a1, a2, a3);
        float s0 = sums[0], s1 = sums[1], s2 = sums[2], s3 = sums[3];
        for (; c < n; c++)
        {
            float xc = x[c];
            s0 += TDec.Scalar(w0, c) * xc;
            s1 += TDec.Scalar(w1, c) * xc;
            s2 += TDec.Scalar(w2, c) * xc;
            s3 += TDec.Scalar(w3, c) * xc;
        }
        y[0] = s0; y[1] = s1; y[2] = s2; y[3] = s3;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot1x4<TS, TV, TDec>(byte* w, float* x, int xs, int n, float* y)
        where TS : IFloatSimd<TV> where TV : struct where TDec : IElementDecoder
    {
        float* x0 = x, x1 = x + xs, x2 = x + 2 * xs, x3 = x + 3 * xs;
        TV a0 = TS.Zero, a1 = TS.Zero, a2 = TS.Zero, a3 = TS.Zero;
        int c = 0;
        for (; c + TS.Count <= n; c += TS.Count)
        {
            TV wv = Load<TV, TDec>(w, c);
            a0 = TS.MultiplyAdd(wv, TS.Load(x0 + c), a0);
            a1 = TS.MultiplyAdd(wv, TS.Load(x1 + c), a1);
            a2 = TS.MultiplyAdd(wv, TS.Load(x2 + c), a2);
            a3 = TS.MultiplyAdd(wv, TS.Load(x3 + c), a3);
        }
        var sums = TS.Sum4(a0, a1, a2, a3);
        float s0 = sums[0], s1 = sums[1], s2 = sums[2], s3 = sums[3];
        for (; c < n; c++)
        {
            float wc = TDec.Scalar(w, c);
            s0 += wc * x0[c]; s1 += wc * x1[c]; s2 += wc * x2[c]; s3 += wc * x3[c];
        }
        y[0] = s0; y[1] = s1; y[2] = s2; y[3] = s3;
    }

    /// <summary>Four rows × four activations; <c>y[j·4 + i]</c> = row i · activation j.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot4x4<TS, TV, TDec>(byte* w, long rb, float* x, int xs, int n, float* y)
        where TS : IFloatSimd<TV> where TV : struct where TDec : IElementDecoder
    {
        byte* w0 = w, w1 = w + rb, w2 = w + 2 * rb, w3 = w + 3 * rb;
        float* x0 = x, x1 = x + xs, x2 = x + 2 * xs, x3 = x + 3 * xs;
        TV a00 = TS.Zero, a01 = TS.Zero, a02 = TS.Zero, a03 = TS.Zero;
        TV a10 = TS.Zero, a11 = TS.Zero, a12 = TS.Zero, a13 = TS.Zero;
        TV a20 = TS.Zero, a21 = TS.Zero, a22 = TS.Zero, a23 = TS.Zero;
        TV a30 = TS.Zero, a31 = TS.Zero, a32 = TS.Zero, a33 = TS.Zero;
        int c = 0;
        for (; c + TS.Count <= n; c += TS.Count)
        {
            TV v0 = TS.Load(x0 + c), v1 = TS.Load(x1 + c), v2 = TS.Load(x2 + c), v3 = TS.Load(x3 + c);
            TV q = Load<TV, TDec>(w0, c);
            a00 = TS.MultiplyAdd(q, v0, a00); a01 = TS.MultiplyAdd(q, v1, a01); a02 = TS.MultiplyAdd(q, v2, a02); a03 = TS.MultiplyAdd(q, v3, a03);
            q = Load<TV, TDec>(w1, c);
            a10 = TS.MultiplyAdd(q, v0, a10); a11 = TS.MultiplyAdd(q, v1, a11); a12 = TS.MultiplyAdd(q, v2, a12); a13 = TS.MultiplyAdd(q, v3, a13);
            q = Load<TV, TDec>(w2, c);
            a20 = TS.MultiplyAdd(q, v0, a20); a21 = TS.MultiplyAdd(q, v1, a21); a22 = TS.MultiplyAdd(q, v2, a22); a23 = TS.MultiplyAdd(q, v3, a23);
            q = Load<TV, TDec>(w3, c);
            a30 = TS.MultiplyAdd(q, v0, a30); a31 = TS.MultiplyAdd(q, v1, a31); a32 = TS.MultiplyAdd(q, v2, a32); a33 = TS.MultiplyAdd(q, v3, a33);
        }
        TS.Sum4(a00, a10, a20, a30).Store(y);
        TS.Sum4(a01, a11, a21, a31).Store(y + 4);
        TS.Sum4(a02, a12, a22, a32).Store(y + 8);
        TS.Sum4(a03, a13, a23, a33).Store(y + 12);
        for (; c < n; c++)
        {
            float c0 = TDec.Scalar(w0, c), c1 = TDec.Scalar(w1, c), c2 = TDec.Scalar(w2, c), c3 = TDec.Scalar(w3, c);
            float v0 = x0[c], v1 = x1[c], v2 = x2[c], v3 = x3[c];
            y[0] += c0 * v0; y[1] += c1 * v0; y[2] += c2 * v0; y[3] += c3 * v0;
            y[4] += c0 * v1; y[5] += c1 * v1; y[6] += c2 * v1; y[7] += c3 * v1;
            y[8] += c0 * v2; y[9] += c1 * v2; y[10] += c2 * v2; y[11] += c3 * v2;
            y[12] += c0 * v3; y[13] += c1 * v3; y[14] += c2 * v3; y[15] += c3 * v3;
        }
    }
}
