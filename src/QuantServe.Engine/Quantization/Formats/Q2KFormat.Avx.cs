using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static QuantServe.Engine.Quantization.Formats.KQuantAvx2;
using static QuantServe.Engine.Quantization.Formats.KQuantMath;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>Q2_K's fused AVX2 kernel.</summary>
public sealed unsafe partial class Q2KFormat
{
    [SkipLocalsInit]
    private protected override void DotRowRangeAvx2(byte* rows, long rowBytes, int rowCount, int nb, byte* act, int stride, int count, float* y, int yStride)
    {
        var m2 = Vector256.Create((byte)3);
        var m4 = Vector128.Create((byte)0x0F);
        float* acc = stackalloc float[count];
        for (int r = 0; r < rowCount; r++)
        {
            byte* row = rows + r * rowBytes;
            new Span<float>(acc, count).Clear();
            for (int i = 0; i < nb; i++)
            {
                var x = (BlockQ2K*)(row + i * 84);
                float xd = Fp16ToFp32(x->D), xmin = Fp16ToFp32(x->DMin);
                var packed = Vector128.Load(x->Scales);
                var scb = packed & m4;
                var mins = Avx2.ConvertToVector256Int16(Vector128.ShiftRightLogical(packed.AsUInt16(), 4).AsByte() & m4);
                var s0 = UnsignedPairScales(scb, 0); var s1 = UnsignedPairScales(scb, 1);
                var s2 = UnsignedPairScales(scb, 2); var s3 = UnsignedPairScales(scb, 3);
                var s4 = UnsignedPairScales(scb, 4); var s5 = UnsignedPairScales(scb, 5);
                var s6 = UnsignedPairScales(scb, 6); var s7 = UnsignedPairScales(scb, 7);
                var q0 = Vector256.Load(x->Qs);
                var q1 = Vector256.Load(x->Qs + 32);
                var w0 = Bits(q0, 0, m2); var w1 = Bits(q0, 2, m2); var w2 = Bits(q0, 4, m2); var w3 = Bits(q0, 6, m2);
                var w4 = Bits(q1, 0, m2); var w5 = Bits(q1, 2, m2); var w6 = Bits(q1, 4, m2); var w7 = Bits(q1, 6, m2);
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
