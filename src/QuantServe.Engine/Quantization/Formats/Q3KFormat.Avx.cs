using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static QuantServe.Engine.Quantization.Formats.KQuantAvx2;
using static QuantServe.Engine.Quantization.Formats.KQuantMath;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>
/// Q3_K's fused AVX2 kernel. Quants are used unsigned (0..7); the −4 offset is
/// applied exactly as 4·Σ_g sc_g·bsum_g.
/// </summary>
public sealed unsafe partial class Q3KFormat
{
    /// <summary>The 16 signed group scales (sc − 32) of a block, unpacked from the 12 packed bytes with 32-bit masks.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<byte> GroupScales(byte* packed)
    {
        const uint k1 = 0x03030303, k2 = 0x0f0f0f0f;
        uint a0 = Unsafe.ReadUnaligned<uint>(packed), a1 = Unsafe.ReadUnaligned<uint>(packed + 4), t = Unsafe.ReadUnaligned<uint>(packed + 8);
        var v = Vector128.Create(
            (a0 & k2) | ((t & k1) << 4),
            (a1 & k2) | (((t >> 2) & k1) << 4),
            ((a0 >> 4) & k2) | (((t >> 4) & k1) << 4),
            ((a1 >> 4) & k2) | (((t >> 6) & k1) << 4)).AsByte();
        return v - Vector128.Create((byte)32);
    }

    /// <summary>4·Σ_g sc_g·bsum_g as 8 int32 partial sums: the −4 offset of every quant.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Bias(byte* a, Vector256<short> scales)
        => Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(Vector256.Load(((BlockQ8K*)a)->BSums), scales), 2);

    [SkipLocalsInit]
    private protected override void DotRowRangeAvx2(byte* rows, long rowBytes, int rowCount, int nb, byte* act, int stride, int count, float* y, int yStride)
    {
        var m2 = Vector256.Create((byte)3);
        var one = Vector256.Create((byte)1);
        float* acc = stackalloc float[count];
        for (int r = 0; r < rowCount; r++)
        {
            byte* row = rows + r * rowBytes;
            new Span<float>(acc, count).Clear();
            for (int i = 0; i < nb; i++)
            {
                var x = (BlockQ3K*)(row + i * 110);
                float xd = Fp16ToFp32(x->D);
                var scb = GroupScales(x->Scales);
                var sc = Avx2.ConvertToVector256Int16(scb.AsSByte());
                var s0 = SignedPairScales(scb, 0); var s1 = SignedPairScales(scb, 1);
                var s2 = SignedPairScales(scb, 2); var s3 = SignedPairScales(scb, 3);
                var s4 = SignedPairScales(scb, 4); var s5 = SignedPairScales(scb, 5);
                var s6 = SignedPairScales(scb, 6); var s7 = SignedPairScales(scb, 7);
                var hm = Vector256.Load(x->HMask);
                var q0 = Vector256.Load(x->Qs);
                var q1 = Vector256.Load(x->Qs + 32);
                var w0 = Bits(q0, 0, m2) | Up(Bits(hm, 0, one), 2);
                var w1 = Bits(q0, 2, m2) | Up(Bits(hm, 1, one), 2);
                var w2 = Bits(q0, 4, m2) | Up(Bits(hm, 2, one), 2);
                var w3 = Bits(q0, 6, m2) | Up(Bits(hm, 3, one), 2);
                var w4 = Bits(q1, 0, m2) | Up(Bits(hm, 4, one), 2);
                var w5 = Bits(q1, 2, m2) | Up(Bits(hm, 5, one), 2);
                var w6 = Bits(q1, 4, m2) | Up(Bits(hm, 6, one), 2);
                var w7 = Bits(q1, 6, m2) | Up(Bits(hm, 7, one), 2);
                byte* ab = act + i * Q8KActivations.BlockBytes;
                int b = 0;
                if (count >= 4)
                {
                    var vxd = Vector128.Create(xd);
                    for (; b + 4 <= count; b += 4, ab += 4 * stride)
                    {
                        var si = Reduce4(
                            Dot8(((BlockQ8K*)ab)->Qs, w0, w1, w2, w3, w4, w5, w6, w7, s0, s1, s2, s3, s4, s5, s6, s7) - Bias(ab, sc),
                            Dot8(((BlockQ8K*)(ab + stride))->Qs, w0, w1, w2, w3, w4, w5, w6, w7, s0, s1, s2, s3, s4, s5, s6, s7) - Bias(ab + stride, sc),
                            Dot8(((BlockQ8K*)(ab + 2 * stride))->Qs, w0, w1, w2, w3, w4, w5, w6, w7, s0, s1, s2, s3, s4, s5, s6, s7) - Bias(ab + 2 * stride, sc),
                            Dot8(((BlockQ8K*)(ab + 3 * stride))->Qs, w0, w1, w2, w3, w4, w5, w6, w7, s0, s1, s2, s3, s4, s5, s6, s7) - Bias(ab + 3 * stride, sc));
                        (Vector128.Load(acc + b) + vxd * Scales4(ab, stride) * Vector128.ConvertToSingle(si)).Store(acc + b);
                    }
                }
                for (; b < count; b++, ab += stride)
                {
                    var p = Dot8(((BlockQ8K*)ab)->Qs, w0, w1, w2, w3, w4, w5, w6, w7, s0, s1, s2, s3, s4, s5, s6, s7);
                    int sumi = Vector256.Sum(p - Bias(ab, sc));
                    acc[b] += xd * ((BlockQ8K*)ab)->D * sumi;
                }
            }
            for (int b = 0; b < count; b++) y[(long)b * yStride + r] = acc[b];
        }
    }
}
