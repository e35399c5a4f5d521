using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static QuantServe.Engine.Quantization.Formats.KQuantMath;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>Q4_K's fused AVX-512 / AVX2 kernels: nibbles and scales are decoded in registers once per block and batch column loop.</summary>
public sealed unsafe partial class Q4KFormat
{
    private const uint KMask1 = 0x3f3f3f3f, KMask2 = 0x0f0f0f0f, KMask3 = 0x03030303;

    /// <summary>
    /// The 8 six-bit scales (bytes 0..7) and 8 mins (bytes 8..15) of a block, unpacked from the 12 packed bytes with
    /// 32-bit masks (same result as <see cref="KQuantMath.ScaleMinK4"/> for j = 0..7).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector128<byte> ScalesAndMins(byte* packed)
    {
        uint u0 = Unsafe.ReadUnaligned<uint>(packed), u1 = Unsafe.ReadUnaligned<uint>(packed + 4), u2 = Unsafe.ReadUnaligned<uint>(packed + 8);
        return Vector128.Create(
            u0 & KMask1,
            (u2 & KMask2) | (((u0 >> 6) & KMask3) << 4),
            u1 & KMask1,
            ((u2 >> 4) & KMask2) | (((u1 >> 6) & KMask3) << 4)).AsByte();
    }

    /// <summary>Returns (Σ of <paramref name="p"/>'s lanes, Σ of <paramref name="m"/>'s lanes) with one shared reduction tree.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static (int, int) Sum2(Vector256<int> p, Vector256<int> m)
    {
        var h = Avx2.HorizontalAdd(p, m);
        var h2 = h.GetLower() + h.GetUpper();
        var h3 = Ssse3.HorizontalAdd(h2, h2);
        return (h3.ToScalar(), h3.GetElement(1));
    }

    /// <summary>Σ_j m_j·(bsum_2j + bsum_2j+1) as 8 int32 partial sums (mins pre-expanded to one per group).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<int> MinDot(byte* a, Vector256<short> minPairs)
        => Avx2.MultiplyAddAdjacent(Vector256.Load(((BlockQ8K*)a)->BSums), minPairs);

    /// <summary>The block's Σ sc·q·a as 8 int32 partial sums, from 4 registers of 64 weights and their pair scales.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<int> Dot512(byte* a, Vector512<byte> w0, Vector512<byte> w1, Vector512<byte> w2, Vector512<byte> w3,
        Vector512<short> s0, Vector512<short> s1, Vector512<short> s2, Vector512<short> s3)
    {
        sbyte* q = ((BlockQ8K*)a)->Qs;
        var p = Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(w0, Vector512.Load(q)), s0)
              + Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(w1, Vector512.Load(q + 64)), s1)
              + Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(w2, Vector512.Load(q + 128)), s2)
              + Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(w3, Vector512.Load(q + 192)), s3);
        return p.GetLower() + p.GetUpper();
    }

    [SkipLocalsInit]
    private protected override void DotRowRangeAvx512(byte* rows, long rowBytes, int rowCount, int nb, byte* act, int stride, int count, float* y, int yStride)
    {
        var m4 = Vector512.Create((byte)0x0F);
        // 16-bit lanes 0..15 (bytes 0..31) keep the low nibbles, lanes 16..31 take the high nibbles.
        var nibbleShift = Vector512.Create(Vector256<ushort>.Zero, Vector256.Create((ushort)4));
        // Pair lane i of the weight vector k covers sub-block 2k (lanes 0..15) or 2k+1 (lanes 16..31).
        var half = Vector512.Create(Vector256<short>.Zero, Vector256<short>.One);
        var idx0 = half;
        var idx1 = half + Vector512.Create((short)2);
        var idx2 = half + Vector512.Create((short)4);
        var idx3 = half + Vector512.Create((short)6);
        var minPairs = Vector128.Create((byte)8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
        float* acc = stackalloc float[count];
        for (int r = 0; r < rowCount; r++)
        {
            byte* row = rows + r * rowBytes;
            new Span<float>(acc, count).Clear();
            for (int i = 0; i < nb; i++)
            {
                var x = (BlockQ4K*)(row + i * 144);
                var sm = ScalesAndMins(x->Scales);
                var sm16 = Avx2.ConvertToVector256Int16(sm).ToVector512Unsafe();
                var s0 = Avx512BW.PermuteVar32x16(sm16, idx0);
                var s1 = Avx512BW.PermuteVar32x16(sm16, idx1);
                var s2 = Avx512BW.PermuteVar32x16(sm16, idx2);
                var s3 = Avx512BW.PermuteVar32x16(sm16, idx3);
                var mins = Avx2.ConvertToVector256Int16(Ssse3.Shuffle(sm, minPairs));
                var w0 = Avx512BW.ShiftRightLogicalVariable(KQuantAvx512.Twice(x->Qs).AsUInt16(), nibbleShift).AsByte() & m4;
                var w1 = Avx512BW.ShiftRightLogicalVariable(KQuantAvx512.Twice(x->Qs + 32).AsUInt16(), nibbleShift).AsByte() & m4;
                var w2 = Avx512BW.ShiftRightLogicalVariable(KQuantAvx512.Twice(x->Qs + 64).AsUInt16(), nibbleShift).AsByte() & m4;
                var w3 = Avx512BW.ShiftRightLogicalVariable(KQuantAvx512.Twice(x->Qs + 96).AsUInt16(), nibbleShift).AsByte() & m4;
                float xd = Fp16ToFp32(x->D), xmin = Fp16ToFp32(x->DMin);
                byte* ab = act + i * Q8KActivations.BlockBytes;
                int b = 0;
                if (count >= 4)
                {
                    var vxd = Vector128.Create(xd);
                    var vxmin = Vector128.Create(xmin);
                    for (; b + 4 <= count; b += 4, ab += 4 * stride)
                    {
                        var si = KQuantAvx2.Reduce4(Dot512(ab, w0, w1, w2, w3, s0, s1, s2, s3), Dot512(ab + stride, w0, w1, w2, w3, s0, s1, s2, s3),
                                                    Dot512(ab + 2 * stride, w0, w1, w2, w3, s0, s1, s2, s3), Dot512(ab + 3 * stride, w0, w1, w2, w3, s0, s1, s2, s3));
                        var mi = KQuantAvx2.Reduce4(MinDot(ab, mins), MinDot(ab + stride, mins), MinDot(ab + 2 * stride, mins), MinDot(ab + 3 * stride, mins));
                        var ad = KQuantAvx2.Scales4(ab, stride);
                        var d = vxd * ad;
                        var dmin = vxmin * ad;
                        (Vector128.Load(acc + b) + (d * Vector128.ConvertToSingle(si) - dmin * Vector128.ConvertToSingle(mi))).Store(acc + b);
                    }
                }
                for (; b < count; b++, ab += stride)
                {
                    var a = (BlockQ8K*)ab;
                    var (sumi, summ) = Sum2(Dot512(ab, w0, w1, w2, w3, s0, s1, s2, s3), MinDot(ab, mins));
                    float d = xd * a->D, dmin = xmin * a->D;
                    acc[b] += d * sumi - dmin * summ;
                }
            }
            for (int b = 0; b < count; b++) y[(long)b * yStride + r] = acc[b];
        }
    }

    [SkipLocalsInit]
    private protected override void DotRowRangeAvx2(byte* rows, long rowBytes, int rowCount, int nb, byte* act, int stride, int count, float* y, int yStride)
    {
        var m4 = Vector256.Create((byte)0x0F);
        var minPairs = Vector128.Create((byte)8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
        float* acc = stackalloc float[count];
        for (int r = 0; r < rowCount; r++)
        {
            byte* row = rows + r * rowBytes;
            new Span<float>(acc, count).Clear();
            for (int i = 0; i < nb; i++)
            {
                var x = (BlockQ4K*)(row + i * 144);
                var sm = ScalesAndMins(x->Scales);
                var mins = Avx2.ConvertToVector256Int16(Ssse3.Shuffle(sm, minPairs));
                var sc = Avx2.ConvertToVector256Int16(sm);
                var s0 = Avx2.BroadcastScalarToVector256(sc.GetLower());
                var s1 = Avx2.BroadcastScalarToVector256(Sse2.ShiftRightLogical128BitLane(sc.GetLower(), 2));
                var s2 = Avx2.BroadcastScalarToVector256(Sse2.ShiftRightLogical128BitLane(sc.GetLower(), 4));
                var s3 = Avx2.BroadcastScalarToVector256(Sse2.ShiftRightLogical128BitLane(sc.GetLower(), 6));
                var s4 = Avx2.BroadcastScalarToVector256(Sse2.ShiftRightLogical128BitLane(sc.GetLower(), 8));
                var s5 = Avx2.BroadcastScalarToVector256(Sse2.ShiftRightLogical128BitLane(sc.GetLower(), 10));
                var s6 = Avx2.BroadcastScalarToVector256(Sse2.ShiftRightLogical128BitLane(sc.GetLower(), 12));
                var s7 = Avx2.BroadcastScalarToVector256(Sse2.ShiftRightLogical128BitLane(sc.GetLower(), 14));
                var v0 = Vector256.Load(x->Qs);
                var v1 = Vector256.Load(x->Qs + 32);
                var v2 = Vector256.Load(x->Qs + 64);
                var v3 = Vector256.Load(x->Qs + 96);
                var l0 = v0 & m4; var h0 = Vector256.ShiftRightLogical(v0.AsUInt16(), 4).AsByte() & m4;
                var l1 = v1 & m4; var h1 = Vector256.ShiftRightLogical(v1.AsUInt16(), 4).AsByte() & m4;
                var l2 = v2 & m4; var h2 = Vector256.ShiftRightLogical(v2.AsUInt16(), 4).AsByte() & m4;
                var l3 = v3 & m4; var h3 = Vector256.ShiftRightLogical(v3.AsUInt16(), 4).AsByte() & m4;
                float xd = Fp16ToFp32(x->D), xmin = Fp16ToFp32(x->DMin);
                byte* ab = act + i * Q8KActivations.BlockBytes;
                int b = 0;
                if (count >= 4)
                {
                    var vxd = Vector128.Create(xd);
                    var vxmin = Vector128.Create(xmin);
                    for (; b + 4 <= count; b += 4, ab += 4 * stride)
                    {
                        var si = KQuantAvx2.Reduce4(
                            KQuantAvx2.Dot8(((BlockQ8K*)ab)->Qs, l0, h0, l1, h1, l2, h2, l3, h3, s0, s1, s2, s3, s4, s5, s6, s7),
                            KQuantAvx2.Dot8(((BlockQ8K*)(ab + stride))->Qs, l0, h0, l1, h1, l2, h2, l3, h3, s0, s1, s2, s3, s4, s5, s6, s7),
                            KQuantAvx2.Dot8(((BlockQ8K*)(ab + 2 * stride))->Qs, l0, h0, l1, h1, l2, h2, l3, h3, s0, s1, s2, s3, s4, s5, s6, s7),
                            KQuantAvx2.Dot8(((BlockQ8K*)(ab + 3 * stride))->Qs, l0, h0, l1, h1, l2, h2, l3, h3, s0, s1, s2, s3, s4, s5, s6, s7));
                        var mi = KQuantAvx2.Reduce4(MinDot(ab, mins), MinDot(ab + stride, mins), MinDot(ab + 2 * stride, mins), MinDot(ab + 3 * stride, mins));
                        var ad = KQuantAvx2.Scales4(ab, stride);
                        var d = vxd * ad;
                        var dmin = vxmin * ad;
                        (Vector128.Load(acc + b) + (d * Vector128.ConvertToSingle(si) - dmin * Vector128.ConvertToSingle(mi))).Store(acc + b);
                    }
                }
                for (; b < count; b++, ab += stride)
                {
                    var a = (BlockQ8K*)ab;
                    var p = KQuantAvx2.Dot8(a->Qs, l0, h0, l1, h1, l2, h2, l3, h3, s0, s1, s2, s3, s4, s5, s6, s7);
                    var (sumi, summ) = Sum2(p, MinDot(ab, mins));
                    float d = xd * a->D, dmin = xmin * a->D;
                    acc[b] += d * sumi - dmin * summ;
                }
            }
            for (int b = 0; b < count; b++) y[(long)b * yStride + r] = acc[b];
        }
    }
}
