using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static QuantServe.Engine.Quantization.Formats.KQuantAvx2;
using static QuantServe.Engine.Quantization.Formats.KQuantMath;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>Q5_K's fused AVX2 kernel.</summary>
public sealed unsafe partial class Q5KFormat
{
    [SkipLocalsInit]
    private protected override void DotRowRangeAvx2(byte* rows, long rowBytes, int rowCount, int nb, byte* act, int stride, int count, float* y, int yStride)
    {
        var m4 = Vector256.Create((byte)0x0F);
        var one = Vector256.Create((byte)1);
        var minPairs = Vector128.Create((byte)8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
        var scPairs = Vector128.Create((byte)0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
        float* acc = stackalloc float[count];
        for (int r = 0; r < rowCount; r++)
        {
            byte* row = rows + r * rowBytes;
            new Span<float>(acc, count).Clear();
            for (int i = 0; i < nb; i++)
            {
                var x = (BlockQ5K*)(row + i * 176);
                float xd = Fp16ToFp32(x->D), xmin = Fp16ToFp32(x->DMin);
                var sm = Q4KFormat.ScalesAndMins(x->Scales);
                var mins = Avx2.ConvertToVector256Int16(Ssse3.Shuffle(sm, minPairs));
                // One scale per 32-weight vector: duplicate each sub-block scale into a pair of groups.
                var sc = Ssse3.Shuffle(sm, scPairs);
                var s0 = UnsignedPairScales(sc, 0); var s1 = UnsignedPairScales(sc, 1);
                var s2 = UnsignedPairScales(sc, 2); var s3 = UnsignedPairScales(sc, 3);
                var s4 = UnsignedPairScales(sc, 4); var s5 = UnsignedPairScales(sc, 5);
                var s6 = UnsignedPairScales(sc, 6); var s7 = UnsignedPairScales(sc, 7);
                var hb = Vector256.Load(x->Qh);
                var v0 = Vector256.Load(x->Qs);
                var v1 = Vector256.Load(x->Qs + 32);
                var v2 = Vector256.Load(x->Qs + 64);
                var v3 = Vector256.Load(x->Qs + 96);
                var w0 = (v0 & m4) | Up(Bits(hb, 0, one), 4);
                var w1 = Bits(v0, 4, m4) | Up(Bits(hb, 1, one), 4);
                var w2 = (v1 & m4) | Up(Bits(hb, 2, one), 4);
                var w3 = Bits(v1, 4, m4) | Up(Bits(hb, 3, one), 4);
                var w4 = (v2 & m4) | Up(Bits(hb, 4, one), 4);
                var w5 = Bits(v2, 4, m4) | Up(Bits(hb, 5, one), 4);
                var w6 = (v3 & m4) | Up(Bits(hb, 6, one), 4);
                var w7 = Bits(v3, 4, m4) | Up(Bits(hb, 7, one), 4);
                byte* ab = act + i * Q8KActivations.BlockBytes;
                int b = 0;
                if (count >= 4)
                {
                    var vxd = Vector128.Create(xd);
                    var vxmin = Vector128.Create(xmin);
                    for (; b + 4 <= count; b += 4, ab += 4 * stride)
                    {
                        var si = Reduce4(
                            Dot8(((BlockQ8K*)ab)->Qs, w0, w1, w2, w3, w4, w5, w6, w7, s0, s1, s2, s3, s4, s5, s6, s7),
                            Dot8(((BlockQ8K*)(ab + stride))->Qs, w0, w1, w2, w3, w4, w5, w6, w7, s0, s1, s2, s3, s4, s5, s6, s7),
                            Dot8(((BlockQ8K*)(ab + 2 * stride))->Qs, w0, w1, w2, w3, w4, w5, w6, w7, s0, s1, s2, s3, s4, s5, s6, s7),
                            Dot8(((BlockQ8K*)(ab + 3 * stride))->Qs, w0, w1, w2, w3, w4, w5, w6, w7, s0, s1, s2, s3, s4, s5, s6, s7));
                        var mi = Reduce4(Q4KFormat.MinDot(ab, mins), Q4KFormat.MinDot(ab + stride, mins),
                            Q4KFormat.MinDot(ab + 2 * stride, mins), Q4KFormat.MinDot(ab + 3 * stride, mins));
                        var ad = Scales4(ab, stride);
                        var d = vxd * ad;
                        var dmin = vxmin * ad;
                        (Vector128.Load(acc + b) + (d * Vector128.ConvertToSingle(si) - dmin * Vector128.ConvertToSingle(mi))).Store(acc + b);
                    }
                }
                for (; b < count; b++, ab += stride)
                {
                    var a = (BlockQ8K*)ab;
                    var p = Dot8(a->Qs, w0, w1, w2, w3, w4, w5, w6, w7, s0, s1, s2, s3, s4, s5, s6, s7);
                    var (sumi, summ) = Q4KFormat.Sum2(p, Q4KFormat.MinDot(ab, mins));
                    float d = xd * a->D, dmin = xmin * a->D;
                    acc[b] += d * sumi - dmin * summ;
                }
            }
            for (int b = 0; b < count; b++) y[(long)b * yStride + r] = acc[b];
        }
    }
}
