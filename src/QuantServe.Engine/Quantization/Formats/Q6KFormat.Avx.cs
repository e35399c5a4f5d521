using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static QuantServe.Engine.Quantization.Formats.KQuantMath;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>
/// Q6_K's fused AVX-512 / AVX2 kernels. Quants are used unsigned (0..63) in pmaddubsw; the −32 offset is applied
/// afterwards exactly as 32·Σ_g sc_g·bsum_g from the Q8_K group sums.
/// </summary>
public sealed unsafe partial class Q6KFormat
{
    /// <summary>32·Σ_g sc_g·bsum_g as 8 int32 partial sums: the −32 offset of every quant.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Bias(byte* a, Vector256<short> scales)
        => Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(Vector256.Load(((BlockQ8K*)a)->BSums), scales), 5);

    [SkipLocalsInit]
    private protected override void DotRowRangeAvx512(byte* rows, long rowBytes, int rowCount, int nb, byte* act, int stride, int count, float* y, int yStride)
    {
        if (count == 1 && rowCount >= 4)
        {
            int done = Rows4OneAvx512(rows, rowBytes, rowCount, nb, act, y);
            rows += done * rowBytes;
            y += done;
            rowCount -= done;
        }
        var m4 = Vector512.Create((byte)0x0F);
        var m2 = Vector512.Create((byte)0x03);
        // qh is broadcast to both 256-bit halves; bytes 0..31 use bit pair (0|4), bytes 32..63 bit pair (2|6).
        var shiftA = Vector512.Create(Vector256<ushort>.Zero, Vector256.Create((ushort)2));
        var shiftB = Vector512.Create(Vector256.Create((ushort)4), Vector256.Create((ushort)6));
        // Pair lane i of weight vector k (64 weights = 4 groups of 16) takes the scale of group 4k + i/8.
        var lane = Vector512.Create((short)0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                    2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
        var idx0 = lane;
        var idx1 = lane + Vector512.Create((short)4);
        var idx2 = lane + Vector512.Create((short)8);
        var idx3 = lane + Vector512.Create((short)12);
        float* acc = stackalloc float[count];
        for (int r = 0; r < rowCount; r++)
        {
            byte* row = rows + r * rowBytes;
            new Span<float>(acc, count).Clear();
            for (int i = 0; i < nb; i++)
            {
                var x = (BlockQ6K*)(row + i * 210);
                float xd = Fp16ToFp32(x->D);
                var sc = Avx2.ConvertToVector256Int16(Vector128.Load(x->Scales));
                var sc512 = sc.ToVector512Unsafe();
                var s0 = Avx512BW.PermuteVar32x16(sc512, idx0);
                var s1 = Avx512BW.PermuteVar32x16(sc512, idx1);
                var s2 = Avx512BW.PermuteVar32x16(sc512, idx2);
                var s3 = Avx512BW.PermuteVar32x16(sc512, idx3);
                var l0 = Vector512.Load(x->Ql);
                var h0 = KQuantAvx512.Twice(x->Qh).AsUInt16();
                var l1 = Vector512.Load(x->Ql + 64);
                var h1 = KQuantAvx512.Twice(x->Qh + 32).AsUInt16();
                var w0 = (l0 & m4) | Vector512.ShiftLeft((Avx512BW.ShiftRightLogicalVariable(h0, shiftA).AsByte() & m2).AsUInt16(), 4).AsByte();
                var w1 = (Vector512.ShiftRightLogical(l0.AsUInt16(), 4).AsByte() & m4) | Vector512.ShiftLeft((Avx512BW.ShiftRightLogicalVariable(h0, shiftB).AsByte() & m2).AsUInt16(), 4).AsByte();
                var w2 = (l1 & m4) | Vector512.ShiftLeft((Avx512BW.ShiftRightLogicalVariable(h1, shiftA).AsByte() & m2).AsUInt16(), 4).AsByte();
                var w3 = (Vector512.ShiftRightLogical(l1.AsUInt16(), 4).AsByte() & m4) | Vector512.ShiftLeft((Avx512BW.ShiftRightLogicalVariable(h1, shiftB).AsByte() & m2).AsUInt16(), 4).AsByte();
                byte* ab = act + i * Q8KActivations.BlockBytes;
                int b = 0;
                if (count >= 4)
                {
                    var vxd = Vector128.Create(xd);
                    for (; b + 4 <= count; b += 4, ab += 4 * stride)
                    {
                        var si = KQuantAvx2.Reduce4(
                            Q4KFormat.Dot512(ab, w0, w1, w2, w3, s0, s1, s2, s3) - Bias(ab, sc),
                            Q4KFormat.Dot512(ab + stride, w0, w1, w2, w3, s0, s1, s2, s3) - Bias(ab + stride, sc),
                            Q4KFormat.Dot512(ab + 2 * stride, w0, w1, w2, w3, s0, s1, s2, s3) - Bias(ab + 2 * stride, sc),
                            Q4KFormat.Dot512(ab + 3 * stride, w0, w1, w2, w3, s0, s1, s2, s3) - Bias(ab + 3 * stride, sc));
                        (Vector128.Load(acc + b) + vxd * KQuantAvx2.Scales4(ab, stride) * Vector128.ConvertToSingle(si)).Store(acc + b);
                    }
                }
                for (; b < count; b++, ab += stride)
                {
                    int sumi = Vector256.Sum(Q4KFormat.Dot512(ab, w0, w1, w2, w3, s0, s1, s2, s3) - Bias(ab, sc));
                    acc[b] += xd * ((BlockQ8K*)ab)->D * sumi;
                }
            }
            for (int b = 0; b < count; b++) y[(long)b * yStride + r] = acc[b];
        }
    }

    [SkipLocalsInit]
    private protected override void DotRowRangeAvx2(byte* rows, long rowBytes, int rowCount, int nb, byte* act, int stride, int count, float* y, int yStride)
    {
        if (count == 1 && rowCount >= 4)
        {
            int done = Rows4OneAvx2(rows, rowBytes, rowCount, nb, act, y);
            rows += done * rowBytes;
            y += done;
            rowCount -= done;
        }
        var m4 = Vector256.Create((byte)0x0F);
        var m2 = Vector256.Create((byte)0x03);
        // Shuffle control k: 8 copies of scale byte 2k, then 8 of 2k+1 (the two groups of one 32-weight vector).
        var pick = Vector128.Create((byte)0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
        var two = Vector128.Create((byte)2);
        float* acc = stackalloc float[count];
        for (int r = 0; r < rowCount; r++)
        {
            byte* row = rows + r * rowBytes;
            new Span<float>(acc, count).Clear();
            for (int i = 0; i < nb; i++)
            {
                var x = (BlockQ6K*)(row + i * 210);
                float xd = Fp16ToFp32(x->D);
                var scBytes = Vector128.Load((byte*)x->Scales);
                var sc = Avx2.ConvertToVector256Int16(scBytes.AsSByte());
                var c0 = pick; var c1 = c0 + two; var c2 = c1 + two; var c3 = c2 + two;
                var c4 = c3 + two; var c5 = c4 + two; var c6 = c5 + two; var c7 = c6 + two;
                var s0 = Avx2.ConvertToVector256Int16(Ssse3.Shuffle(scBytes, c0).AsSByte());
                var s1 = Avx2.ConvertToVector256Int16(Ssse3.Shuffle(scBytes, c1).AsSByte());
                var s2 = Avx2.ConvertToVector256Int16(Ssse3.Shuffle(scBytes, c2).AsSByte());
                var s3 = Avx2.ConvertToVector256Int16(Ssse3.Shuffle(scBytes, c3).AsSByte());
                var s4 = Avx2.ConvertToVector256Int16(Ssse3.Shuffle(scBytes, c4).AsSByte());
                var s5 = Avx2.ConvertToVector256Int16(Ssse3.Shuffle(scBytes, c5).AsSByte());
                var s6 = Avx2.ConvertToVector256Int16(Ssse3.Shuffle(scBytes, c6).AsSByte());
                var s7 = Avx2.ConvertToVector256Int16(Ssse3.Shuffle(scBytes, c7).AsSByte());
                var la = Vector256.Load(x->Ql);
                var lb = Vector256.Load(x->Ql + 32);
                var ha = Vector256.Load(x->Qh).AsUInt16();
                var lc = Vector256.Load(x->Ql + 64);
                var ld = Vector256.Load(x->Ql + 96);
                var hb = Vector256.Load(x->Qh + 32).AsUInt16();
                var w0 = (la & m4) | Vector256.ShiftLeft((ha.AsByte() & m2).AsUInt16(), 4).AsByte();
                var w1 = (lb & m4) | Vector256.ShiftLeft((Vector256.ShiftRightLogical(ha, 2).AsByte() & m2).AsUInt16(), 4).AsByte();
                var w2 = (Vector256.ShiftRightLogical(la.AsUInt16(), 4).AsByte() & m4) | Vector256.ShiftLeft((Vector256.ShiftRightLogical(ha, 4).AsByte() & m2).AsUInt16(), 4).AsByte();
                var w3 = (Vector256.ShiftRightLogical(lb.AsUInt16(), 4).AsByte() & m4) | Vector256.ShiftLeft((Vector256.ShiftRightLogical(ha, 6).AsByte() & m2).AsUInt16(), 4).AsByte();
                var w4 = (lc & m4) | Vector256.ShiftLeft((hb.AsByte() & m2).AsUInt16(), 4).AsByte();
                var w5 = (ld & m4) | Vector256.ShiftLeft((Vector256.ShiftRightLogical(hb, 2).AsByte() & m2).AsUInt16(), 4).AsByte();
                var w6 = (Vector256.ShiftRightLogical(lc.AsUInt16(), 4).AsByte() & m4) | Vector256.ShiftLeft((Vector256.ShiftRightLogical(hb, 4).AsByte() & m2).AsUInt16(), 4).AsByte();
                var w7 = (Vector256.ShiftRightLogical(ld.AsUInt16(), 4).AsByte() & m4) | Vector256.ShiftLeft((Vector256.ShiftRightLogical(hb, 6).AsByte() & m2).AsUInt16(), 4).AsByte();
                byte* ab = act + i * Q8KActivations.BlockBytes;
                int b = 0;
                if (count >= 4)
                {
                    var vxd = Vector128.Create(xd);
                    for (; b + 4 <= count; b += 4, ab += 4 * stride)
                    {
                        var si = KQuantAvx2.Reduce4(
                            KQuantAvx2.Dot8(((BlockQ8K*)ab)->Qs, w0, w1, w2, w3, w4, w5, w6, w7, s0, s1, s2, s3, s4, s5, s6, s7) - Bias(ab, sc),
                            KQuantAvx2.Dot8(((BlockQ8K*)(ab + stride))->Qs, w0, w1, w2, w3, w4, w5, w6, w7, s0, s1, s2, s3, s4, s5, s6, s7) - Bias(ab + stride, sc),
                            KQuantAvx2.Dot8(((BlockQ8K*)(ab + 2 * stride))->Qs, w0, w1, w2, w3, w4, w5, w6, w7, s0, s1, s2, s3, s4, s5, s6, s7) - Bias(ab + 2 * stride, sc),
                            KQuantAvx2.Dot8(((BlockQ8K*)(ab + 3 * stride))->Qs, w0, w1, w2, w3, w4, w5, w6, w7, s0, s1, s2, s3, s4, s5, s6, s7) - Bias(ab + 3 * stride, sc));
                        (Vector128.Load(acc + b) + vxd * KQuantAvx2.Scales4(ab, stride) * Vector128.ConvertToSingle(si)).Store(acc + b);
                    }
                }
                for (; b < count; b++, ab += stride)
                {
                    var p = KQuantAvx2.Dot8(((BlockQ8K*)ab)->Qs, w0, w1, w2, w3, w4, w5, w6, w7, s0, s1, s2, s3, s4, s5, s6, s7);
                    int sumi = Vector256.Sum(p - Bias(ab, sc));
                    acc[b] += xd * ((BlockQ8K*)ab)->D * sumi;
                }
            }
            for (int b = 0; b < count; b++) y[(long)b * yStride + r] = acc[b];
        }
    }

    // Decoding one token: four rows share each activation block and one horizontal fold of their four integer sums, and
    // the float update y_r += (d_r·d_a)·sumi_r runs as one 4-wide vector, in the scalar kernel's order of operations.

    /// <summary>Rows [0, rowCount &amp; ~3) against one activation vector (AVX2); returns the number of rows done.</summary>
    [SkipLocalsInit]
    private static int Rows4OneAvx2(byte* rows, long rowBytes, int rowCount, int nb, byte* act, float* y)
    {
        int r = 0;
        for (; r + 4 <= rowCount; r += 4)
        {
            byte* row = rows + r * rowBytes;
            var acc = Vector128<float>.Zero;
            for (int i = 0; i < nb; i++)
            {
                var x0 = (BlockQ6K*)(row + i * 210);
                var x1 = (BlockQ6K*)((byte*)x0 + rowBytes);
                var x2 = (BlockQ6K*)((byte*)x1 + rowBytes);
                var x3 = (BlockQ6K*)((byte*)x2 + rowBytes);
                byte* ab = act + i * Q8KActivations.BlockBytes;
                var si = KQuantAvx2.Reduce4(BlockAvx2(x0, ab), BlockAvx2(x1, ab), BlockAvx2(x2, ab), BlockAvx2(x3, ab));
                var xd = Vector128.Create(Fp16ToFp32(x0->D), Fp16ToFp32(x1->D), Fp16ToFp32(x2->D), Fp16ToFp32(x3->D));
                acc += xd * Vector128.Create(((BlockQ8K*)ab)->D) * Vector128.ConvertToSingle(si);
            }
            acc.Store(y + r);
        }
        return r;
    }

    /// <summary>Σ_g sc_g·Σ_j (q_j − 32)·a_j of one block as 8 int32 partial sums (AVX2).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> BlockAvx2(BlockQ6K* x, byte* ab)
    {
        var m4 = Vector256.Create((byte)0x0F);
        var m2 = Vector256.Create((byte)0x03);
        var scBytes = Vector128.Load((byte*)x->Scales);
        var sc = Avx2.ConvertToVector256Int16(scBytes.AsSByte());
        var two = Vector128.Create((byte)2);
        var c0 = Vector128.Create((byte)0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
        var c1 = c0 + two; var c2 = c1 + two; var c3 = c2 + two;
        var c4 = c3 + two; var c5 = c4 + two; var c6 = c5 + two; var c7 = c6 + two;
        var s0 = Avx2.ConvertToVector256Int16(Ssse3.Shuffle(scBytes, c0).AsSByte());
        var s1 = Avx2.ConvertToVector256Int16(Ssse3.Shuffle(scBytes, c1).AsSByte());
        var s2 = Avx2.ConvertToVector256Int16(Ssse3.Shuffle(scBytes, c2).AsSByte());
        var s3 = Avx2.ConvertToVector256Int16(Ssse3.Shuffle(scBytes, c3).AsSByte());
        var s4 = Avx2.ConvertToVector256Int16(Ssse3.Shuffle(scBytes, c4).AsSByte());
        var s5 = Avx2.ConvertToVector256Int16(Ssse3.Shuffle(scBytes, c5).AsSByte());
        var s6 = Avx2.ConvertToVector256Int16(Ssse3.Shuffle(scBytes, c6).AsSByte());
        var s7 = Avx2.ConvertToVector256Int16(Ssse3.Shuffle(scBytes, c7).AsSByte());
        var la = Vector256.Load(x->Ql);
        var lb = Vector256.Load(x->Ql + 32);
        var ha = Vector256.Load(x->Qh).AsUInt16();
        var lc = Vector256.Load(x->Ql + 64);
        var ld = Vector256.Load(x->Ql + 96);
        var hb = Vector256.Load(x->Qh + 32).AsUInt16();
        var w0 = (la & m4) | Vector256.ShiftLeft((ha.AsByte() & m2).AsUInt16(), 4).AsByte();
        var w1 = (lb & m4) | Vector256.ShiftLeft((Vector256.ShiftRightLogical(ha, 2).AsByte() & m2).AsUInt16(), 4).AsByte();
        var w2 = (Vector256.ShiftRightLogical(la.AsUInt16(), 4).AsByte() & m4) | Vector256.ShiftLeft((Vector256.ShiftRightLogical(ha, 4).AsByte() & m2).AsUInt16(), 4).AsByte();
        var w3 = (Vector256.ShiftRightLogical(lb.AsUInt16(), 4).AsByte() & m4) | Vector256.ShiftLeft((Vector256.ShiftRightLogical(ha, 6).AsByte() & m2).AsUInt16(), 4).AsByte();
        var w4 = (lc & m4) | Vector256.ShiftLeft((hb.AsByte() & m2).AsUInt16(), 4).AsByte();
        var w5 = (ld & m4) | Vector256.ShiftLeft((Vector256.ShiftRightLogical(hb, 2).AsByte() & m2).AsUInt16(), 4).AsByte();
        var w6 = (Vector256.ShiftRightLogical(lc.AsUInt16(), 4).AsByte() & m4) | Vector256.ShiftLeft((Vector256.ShiftRightLogical(hb, 4).AsByte() & m2).AsUInt16(), 4).AsByte();
        var w7 = (Vector256.ShiftRightLogical(ld.AsUInt16(), 4).AsByte() & m4) | Vector256.ShiftLeft((Vector256.ShiftRightLogical(hb, 6).AsByte() & m2).AsUInt16(), 4).AsByte();
        return KQuantAvx2.Dot8(((BlockQ8K*)ab)->Qs, w0, w1, w2, w3, w4, w5, w6, w7, s0, s1, s2, s3, s4, s5, s6, s7) - Bias(ab, sc);
    }

    /// <summary>Rows [0, rowCount &amp; ~3) against one activation vector (AVX-512); returns the number of rows done.</summary>
    [SkipLocalsInit]
    private static int Rows4OneAvx512(byte* rows, long rowBytes, int rowCount, int nb, byte* act, float* y)
    {
        int r = 0;
        for (; r + 4 <= rowCount; r += 4)
        {
            byte* row = rows + r * rowBytes;
            var acc = Vector128<float>.Zero;
            for (int i = 0; i < nb; i++)
            {
                var x0 = (BlockQ6K*)(row + i * 210);
                var x1 = (BlockQ6K*)((byte*)x0 + rowBytes);
                var x2 = (BlockQ6K*)((byte*)x1 + rowBytes);
                var x3 = (BlockQ6K*)((byte*)x2 + rowBytes);
                byte* ab = act + i * Q8KActivations.BlockBytes;
                var si = KQuantAvx2.Reduce4(Block512(x0, ab), Block512(x1, ab), Block512(x2, ab), Block512(x3, ab));
                var xd = Vector128.Create(Fp16ToFp32(x0->D), Fp16ToFp32(x1->D), Fp16ToFp32(x2->D), Fp16ToFp32(x3->D));
                acc += xd * Vector128.Create(((BlockQ8K*)ab)->D) * Vector128.ConvertToSingle(si);
            }
            acc.Store(y + r);
        }
        return r;
    }

    /// <summary>Σ_g sc_g·Σ_j (q_j − 32)·a_j of one block as 8 int32 partial sums (AVX-512).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Block512(BlockQ6K* x, byte* ab)
    {
        var m4 = Vector512.Create((byte)0x0F);
        var m2 = Vector512.Create((byte)0x03);
        var shiftA = Vector512.Create(Vector256<ushort>.Zero, Vector256.Create((ushort)2));
        var shiftB = Vector512.Create(Vector256.Create((ushort)4), Vector256.Create((ushort)6));
        var lane = Vector512.Create((short)0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                    2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
        var sc = Avx2.ConvertToVector256Int16(Vector128.Load(x->Scales));
        var sc512 = sc.ToVector512Unsafe();
        var s0 = Avx512BW.PermuteVar32x16(sc512, lane);
        var s1 = Avx512BW.PermuteVar32x16(sc512, lane + Vector512.Create((short)4));
        var s2 = Avx512BW.PermuteVar32x16(sc512, lane + Vector512.Create((short)8));
        var s3 = Avx512BW.PermuteVar32x16(sc512, lane + Vector512.Create((short)12));
        var l0 = Vector512.Load(x->Ql);
        var h0 = KQuantAvx512.Twice(x->Qh).AsUInt16();
        var l1 = Vector512.Load(x->Ql + 64);
        var h1 = KQuantAvx512.Twice(x->Qh + 32).AsUInt16();
        var w0 = (l0 & m4) | Vector512.ShiftLeft((Avx512BW.ShiftRightLogicalVariable(h0, shiftA).AsByte() & m2).AsUInt16(), 4).AsByte();
        var w1 = (Vector512.ShiftRightLogical(l0.AsUInt16(), 4).AsByte() & m4) | Vector512.ShiftLeft((Avx512BW.ShiftRightLogicalVariable(h0, shiftB).AsByte() & m2).AsUInt16(), 4).AsByte();
        var w2 = (l1 & m4) | Vector512.ShiftLeft((Avx512BW.ShiftRightLogicalVariable(h1, shiftA).AsByte() & m2).AsUInt16(), 4).AsByte();
        var w3 = (Vector512.ShiftRightLogical(l1.AsUInt16(), 4).AsByte() & m4) | Vector512.ShiftLeft((Avx512BW.ShiftRightLogicalVariable(h1, shiftB).AsByte() & m2).AsUInt16(), 4).AsByte();
        return Q4KFormat.Dot512(ab, w0, w1, w2, w3, s0, s1, s2, s3) - Bias(ab, sc);
    }
}
