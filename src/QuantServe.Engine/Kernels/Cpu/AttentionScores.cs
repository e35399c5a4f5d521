using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace QuantServe.Engine.Kernels.Cpu;

/// <summary>
/// The two inner loops of attention over a cache laid out [position × stride]: scaled query–key dot products and the
/// probability-weighted sum of values. Head widths are small (32–128), so a library dot product per position would be
/// dominated by call overhead; these loops keep the query (or the output) in registers across positions.
/// Widest vector first (Vector512, Vector256, Vector128), scalar tail.
/// </summary>
public static unsafe class AttentionScores
{
    /// <summary><c>scores[j] = scale · Σ_c q[c] · keys[j·stride + c]</c> for j in [0, count), c in [0, q.Length).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ScaledDots(ReadOnlySpan<float> q, ReadOnlySpan<float> keys, int stride, int count, float scale, Span<float> scores)
    {
        int d = q.Length;
        if (count <= 0) return;
        if ((long)(count - 1) * stride + d > keys.Length || scores.Length < count)
            throw new ArgumentException($"attention: {count} positions of width {d} at stride {stride} exceed the buffers");
        fixed (float* pq = q)
        fixed (float* pk = keys)
        fixed (float* ps = scores)
        {
            int j = 0;
            // Four keys per pass: a head is only 2-8 vectors wide, so one horizontal sum per key would cost as much as the
            // multiply-adds; four accumulators are folded into one vector of four sums with two rounds of haddps.
            if (Avx.IsSupported && d >= 8) j = ScaledDots4(pq, pk, stride, count, d, scale, ps);
            for (; j < count; j++)
            {
                float* k = pk + (long)j * stride;
                int c = 0;
                float sum = 0;
                if (Vector512.IsHardwareAccelerated && d >= 16)
                {
                    var acc = Vector512<float>.Zero;
                    for (; c + 16 <= d; c += 16) acc = Vector512.FusedMultiplyAdd(Vector512.Load(pq + c), Vector512.Load(k + c), acc);
                    sum = Vector512.Sum(acc);
                }
                else if (Vector256.IsHardwareAccelerated && d >= 8)
                {
                    var acc = Vector256<float>.Zero;
                    for (; c + 8 <= d; c += 8) acc = Vector256.FusedMultiplyAdd(Vector256.Load(pq + c), Vector256.Load(k + c), acc);
                    sum = Vector256.Sum(acc);
                }
                else if (Vector128.IsHardwareAccelerated && d >= 4)
                {
                    var acc = Vector128<float>.Zero;
                    for (; c + 4 <= d; c += 4) acc = Vector128.FusedMultiplyAdd(Vector128.Load(pq + c), Vector128.Load(k + c), acc);
                    sum = Vector128.Sum(acc);
                }
                for (; c < d; c++) sum += pq[c] * k[c];
                ps[j] = sum * scale;
            }
        }
    }

    /// <summary>ScaledDots for keys [0, count &amp; ~3), four at a time; returns how many keys it covered.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int ScaledDots4(float* pq, float* pk, int stride, int count, int d, float scale, float* ps)
    {
        int j = 0;
        for (; j + 4 <= count; j += 4)
        {
            float* k0 = pk + (long)j * stride, k1 = k0 + stride, k2 = k1 + stride, k3 = k2 + stride;
            Vector256<float> r0, r1, r2, r3;
            int c = 0;
            if (Vector512.IsHardwareAccelerated && d >= 16)
            {
                Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
                for (; c + 16 <= d; c += 16)
                {
                    var x = Vector512.Load(pq + c);
                    a0 = Vector512.FusedMultiplyAdd(x, Vector512.Load(k0 + c), a0);
                    a1 = Vector512.FusedMultiplyAdd(x, Vector512.Load(k1 + c), a1);
                    a2 = Vector512.FusedMultiplyAdd(x, Vector512.Load(k2 + c), a2);
                    a3 = Vector512.FusedMultiplyAdd(x, Vector512.Load(k3 + c), a3);
                }
                r0 = a0.GetLower() + a0.GetUpper();
                r1 = a1.GetLower() + a1.GetUpper();
                r2 = a2.GetLower() + a2.GetUpper();
                r3 = a3.GetLower() + a3.GetUpper();
            }
            else
            {
                r0 = r1 = r2 = r3 = default;
            }
            for (; c + 8 <= d; c += 8)
            {
                var x = Vector256.Load(pq + c);
                r0 = Vector256.FusedMultiplyAdd(x, Vector256.Load(k0 + c), r0);
                r1 = Vector256.FusedMultiplyAdd(x, Vector256.Load(k1 + c), r1);
                r2 = Vector256.FusedMultiplyAdd(x, Vector256.Load(k2 + c), r2);
                r3 = Vector256.FusedMultiplyAdd(x, Vector256.Load(k3 + c), r3);
            }
            // haddps twice: lane i of each 128-bit half holds a partial sum of key i; the two halves then add up.
            var h = Avx.HorizontalAdd(Avx.HorizontalAdd(r0, r1), Avx.HorizontalAdd(r2, r3));
            var sums = h.GetLower() + h.GetUpper();
            if (c < d)
            {
                float t0 = 0, t1 = 0, t2 = 0, t3 = 0;
                for (; c < d; c++)
                {
                    float x = pq[c];
                    t0 += x * k0[c]; t1 += x * k1[c]; t2 += x * k2[c]; t3 += x * k3[c];
                }
                sums += Vector128.Create(t0, t1, t2, t3);
            }
            (sums * scale).Store(ps + j);
        }
        return j;
    }

    /// <summary><c>output[c] = Σ_j weights[j] · values[j·stride + c]</c> for c in [0, output.Length), j in [0, count).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void WeightedSum(ReadOnlySpan<float> weights, ReadOnlySpan<float> values, int stride, int count, Span<float> output)
    {
        int d = output.Length;
        output.Clear();
        if (count <= 0) return;
        if ((long)(count - 1) * stride + d > values.Length || weights.Length < count)
            throw new ArgumentException($"attention: {count} positions of width {d} at stride {stride} exceed the buffers");
        fixed (float* pw = weights)
        fixed (float* pv = values)
        fixed (float* po = output)
        {
            int c = 0;
            // Column blocks of up to four vectors stay in registers while every position is accumulated.
            if (Vector512.IsHardwareAccelerated)
                for (; c + 16 <= d; c += 16)
                {
                    var acc = Vector512<float>.Zero;
                    for (int j = 0; j < count; j++) acc = Vector512.FusedMultiplyAdd(Vector512.Create(pw[j]), Vector512.Load(pv + (long)j * stride + c), acc);
                    acc.Store(po + c);
                }
            if (Vector256.IsHardwareAccelerated)
                for (; c + 8 <= d; c += 8)
                {
                    var acc = Vector256<float>.Zero;
                    for (int j = 0; j < count; j++) acc = Vector256.FusedMultiplyAdd(Vector256.Create(pw[j]), Vector256.Load(pv + (long)j * stride + c), acc);
                    acc.Store(po + c);
                }
            if (Vector128.IsHardwareAccelerated)
                for (; c + 4 <= d; c += 4)
                {
                    var acc = Vector128<float>.Zero;
                    for (int j = 0; j < count; j++) acc = Vector128.FusedMultiplyAdd(Vector128.Create(pw[j]), Vector128.Load(pv + (long)j * stride + c), acc);
                    acc.Store(po + c);
                }
            for (; c < d; c++)
            {
                float acc = 0;
                for (int j = 0; j < count; j++) acc += pw[j] * pv[(long)j * stride + c];
                po[c] = acc;
            }
        }
    }

    /// <summary>
    /// Four queries against the same keys, each key loaded once for all four (a prompt's queries of one head re-read the
    /// same cache rows, so the single-query loops are bound by cache traffic):
    /// <c>s_k[j] = scale · Σ_c q_k[c] · keys[j·stride + c]</c> for k in 0..3, j in [0, count), c in [0, d).
    /// <paramref name="d"/> must be a positive multiple of 16 and Vector512 accelerated (see <see cref="MultiQuerySupported"/>).
    /// Queries or score rows may alias each other (a caller with fewer than four queries repeats one).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ScaledDots4Queries(float* q0, float* q1, float* q2, float* q3, float* keys, int stride, int count, int d,
        float scale, float* s0, float* s1, float* s2, float* s3)
    {
        int j = 0;
        for (; j + 4 <= count; j += 4)
        {
            float* k0 = keys + (long)j * stride, k1 = k0 + stride, k2 = k1 + stride, k3 = k2 + stride;
            Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default;
            Vector512<float> a10 = default, a11 = default, a12 = default, a13 = default;
            Vector512<float> a20 = default, a21 = default, a22 = default, a23 = default;
            Vector512<float> a30 = default, a31 = default, a32 = default, a33 = default;
            for (int c = 0; c < d; c += 16)
            {
                var K0 = Vector512.Load(k0 + c);
                var K1 = Vector512.Load(k1 + c);
                var K2 = Vector512.Load(k2 + c);
                var K3 = Vector512.Load(k3 + c);
                var x = Vector512.Load(q0 + c);
                a00 = Vector512.FusedMultiplyAdd(x, K0, a00); a01 = Vector512.FusedMultiplyAdd(x, K1, a01);
                a02 = Vector512.FusedMultiplyAdd(x, K2, a02); a03 = Vector512.FusedMultiplyAdd(x, K3, a03);
                x = Vector512.Load(q1 + c);
                a10 = Vector512.FusedMultiplyAdd(x, K0, a10); a11 = Vector512.FusedMultiplyAdd(x, K1, a11);
                a12 = Vector512.FusedMultiplyAdd(x, K2, a12); a13 = Vector512.FusedMultiplyAdd(x, K3, a13);
                x = Vector512.Load(q2 + c);
                a20 = Vector512.FusedMultiplyAdd(x, K0, a20); a21 = Vector512.FusedMultiplyAdd(x, K1, a21);
                a22 = Vector512.FusedMultiplyAdd(x, K2, a22); a23 = Vector512.FusedMultiplyAdd(x, K3, a23);
                x = Vector512.Load(q3 + c);
                a30 = Vector512.FusedMultiplyAdd(x, K0, a30); a31 = Vector512.FusedMultiplyAdd(x, K1, a31);
                a32 = Vector512.FusedMultiplyAdd(x, K2, a32); a33 = Vector512.FusedMultiplyAdd(x, K3, a33);
            }
            (Reduce4(a00, a01, a02, a03) * scale).Store(s0 + j);
            (Reduce4(a10, a11, a12, a13) * scale).Store(s1 + j);
            (Reduce4(a20, a21, a22, a23) * scale).Store(s2 + j);
            (Reduce4(a30, a31, a32, a33) * scale).Store(s3 + j);
        }
        for (; j < count; j++)
        {
            float* k = keys + (long)j * stride;
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (int c = 0; c < d; c += 16)
            {
                var K = Vector512.Load(k + c);
                a0 = Vector512.FusedMultiplyAdd(Vector512.Load(q0 + c), K, a0);
                a1 = Vector512.FusedMultiplyAdd(Vector512.Load(q1 + c), K, a1);
                a2 = Vector512.FusedMultiplyAdd(Vector512.Load(q2 + c), K, a2);
                a3 = Vector512.FusedMultiplyAdd(Vector512.Load(q3 + c), K, a3);
            }
            s0[j] = Vector512.Sum(a0) * scale;
            s1[j] = Vector512.Sum(a1) * scale;
            s2[j] = Vector512.Sum(a2) * scale;
            s3[j] = Vector512.Sum(a3) * scale;
        }
    }

    /// <summary>Lane k of the result: the sum of every lane of a_k (one 512→256 fold each, then two rounds of haddps).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Reduce4(Vector512<float> a0, Vector512<float> a1, Vector512<float> a2, Vector512<float> a3)
    {
        var r0 = a0.GetLower() + a0.GetUpper();
        var r1 = a1.GetLower() + a1.GetUpper();
        var r2 = a2.GetLower() + a2.GetUpper();
        var r3 = a3.GetLower() + a3.GetUpper();
        var h = Avx.HorizontalAdd(Avx.HorizontalAdd(r0, r1), Avx.HorizontalAdd(r2, r3));
        return h.GetLower() + h.GetUpper();
    }

    /// <summary>
    /// Four weighted sums over the same values, each value row loaded once for all four:
    /// <c>o_k[c] = Σ_j w_k[j] · values[j·stride + c]</c> for k in 0..3, c in [0, d), j in [0, count).
    /// Same requirements as <see cref="ScaledDots4Queries"/>; weight rows or outputs may alias (outputs then get the same values).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void WeightedSum4Queries(float* w0, float* w1, float* w2, float* w3, float* values, int stride, int count, int d,
        float* o0, float* o1, float* o2, float* o3)
        => Products4(w0, w1, w2, w3, values, stride, count, d, 1f, o0, o1, o2, o3);

    /// <summary>
    /// Keys of one head transposed for <see cref="ScaledDots4QueriesTransposed"/>: <c>kt[c·ldk + j] = keys[j·stride + c]</c>
    /// for c in [0, d), j in [<paramref name="first"/>, <paramref name="end"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void TransposeKeys(float* keys, int stride, int first, int end, int d, float* kt, int ldk)
    {
        for (int j = first; j < end; j++)
        {
            float* k = keys + (long)j * stride;
            for (int c = 0; c < d; c++) kt[(long)c * ldk + j] = k[c];
        }
    }

    /// <summary>
    /// <see cref="ScaledDots4Queries"/> from transposed keys (<see cref="TransposeKeys"/>): <c>s_k[j] = scale · Σ_c q_k[c] · kt[c·ldk + j]</c>
    /// for j in [0, count) and the four queries k. Sixteen keys share one vector, so each product is one multiply-add and no
    /// horizontal sums are needed (with the keys as rows, a 32-wide head spends more on reductions than on products).
    /// Writes s_k up to count rounded up to 16: score rows and <paramref name="kt"/> rows need that much room
    /// (the extra scores are meaningless).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ScaledDots4QueriesTransposed(float* q0, float* q1, float* q2, float* q3, float* kt, int ldk, int count, int d,
        float scale, float* s0, float* s1, float* s2, float* s3)
        => Products4(q0, q1, q2, q3, kt, ldk, d, count, scale, s0, s1, s2, s3);

    /// <summary>
    /// The one kernel behind both: <c>o_k[i] = scale · Σ_r x_k[r] · m[r·ld + i]</c> for the four vectors k, r in
    /// [0, reduce), i in [0, outputs rounded up to 16). Sixteen outputs share one vector, so each product is one
    /// multiply-add with no horizontal sums; a scale of 1 leaves the sums exact.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Products4(float* x0, float* x1, float* x2, float* x3, float* m, int ld, int reduce, int outputs,
        float scale, float* o0, float* o1, float* o2, float* o3)
    {
        var vs = Vector512.Create(scale);
        int j = 0;
        // Two output vectors per pass: eight independent accumulators keep both FMA pipes busy through the latency.
        for (; j + 32 <= outputs; j += 32)
        {
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            Vector512<float> b0 = default, b1 = default, b2 = default, b3 = default;
            float* k = m + j;
            for (int c = 0; c < reduce; c++, k += ld)
            {
                var K0 = Vector512.Load(k);
                var K1 = Vector512.Load(k + 16);
                var x = Vector512.Create(x0[c]);
                a0 = Vector512.FusedMultiplyAdd(x, K0, a0); b0 = Vector512.FusedMultiplyAdd(x, K1, b0);
                x = Vector512.Create(x1[c]);
                a1 = Vector512.FusedMultiplyAdd(x, K0, a1); b1 = Vector512.FusedMultiplyAdd(x, K1, b1);
                x = Vector512.Create(x2[c]);
                a2 = Vector512.FusedMultiplyAdd(x, K0, a2); b2 = Vector512.FusedMultiplyAdd(x, K1, b2);
                x = Vector512.Create(x3[c]);
                a3 = Vector512.FusedMultiplyAdd(x, K0, a3); b3 = Vector512.FusedMultiplyAdd(x, K1, b3);
            }
            (a0 * vs).Store(o0 + j); (b0 * vs).Store(o0 + j + 16);
            (a1 * vs).Store(o1 + j); (b1 * vs).Store(o1 + j + 16);
            (a2 * vs).Store(o2 + j); (b2 * vs).Store(o2 + j + 16);
            (a3 * vs).Store(o3 + j); (b3 * vs).Store(o3 + j + 16);
        }
        for (; j < outputs; j += 16)
        {
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            float* k = m + j;
            for (int c = 0; c < reduce; c++, k += ld)
            {
                var K0 = Vector512.Load(k);
                a0 = Vector512.FusedMultiplyAdd(Vector512.Create(x0[c]), K0, a0);
                a1 = Vector512.FusedMultiplyAdd(Vector512.Create(x1[c]), K0, a1);
                a2 = Vector512.FusedMultiplyAdd(Vector512.Create(x2[c]), K0, a2);
                a3 = Vector512.FusedMultiplyAdd(Vector512.Create(x3[c]), K0, a3);
            }
            (a0 * vs).Store(o0 + j);
            (a1 * vs).Store(o1 + j);
            (a2 * vs).Store(o2 + j);
            (a3 * vs).Store(o3 + j);
        }
    }

    /// <summary>Whether the four-query kernels run for head width <paramref name="d"/> on this CPU.</summary>
    public static bool MultiQuerySupported(int d) => Vector512.IsHardwareAccelerated && Avx.IsSupported && d > 0 && d % 16 == 0;
}
