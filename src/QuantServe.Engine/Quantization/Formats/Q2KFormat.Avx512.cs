using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static QuantServe.Engine.Quantization.Formats.KQuantAvx512;
using static QuantServe.Engine.Quantization.Formats.KQuantMath;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>Q2_K's fused AVX-512 kernel: each 64-weight register takes two 2-bit planes of one qs half.</summary>
public sealed unsafe partial class Q2KFormat
{
    [SkipLocalsInit]
    private protected override void DotRowRangeAvx512(byte* rows, long rowBytes, int rowCount, int nb, byte* act, int stride, int count, float* y, int yStride)
    {
        var m2 = Vector512.Create((byte)3);
        var m4 = Vector128.Create((byte)0x0F);
        var lo01 = Shifts(0, 2); var lo23 = Shifts(4, 6);
        var idx0 = GroupIndex(0); var idx1 = GroupIndex(1); var idx2 = GroupIndex(2); var idx3 = GroupIndex(3);
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
                var sc512 = Avx2.ConvertToVector256Int16(packed & m4).ToVector512Unsafe();
                var mins = Avx2.ConvertToVector256Int16(Vector128.ShiftRightLogical(packed.AsUInt16(), 4).AsByte() & m4);
                var s0 = Avx512BW.PermuteVar32x16(sc512, idx0);
                var s1 = Avx512BW.PermuteVar32x16(sc512, idx1);
                var s2 = Avx512BW.PermuteVar32x16(sc512, idx2);
                var s3 = Avx512BW.PermuteVar32x16(sc512, idx3);
                var q0 = Twice(x->Qs);
                var q1 = Twice(x->Qs + 32);
                var w0 = Bits(q0, lo01, m2);
                var w1 = Bits(q0, lo23, m2);
                var w2 = Bits(q1, lo01, m2);
                var w3 = Bits(q1, lo23, m2);
                byte* ab = act + i * Q8KActivations.BlockBytes;
                int b = 0;
                if (count >= 4)
                {
                    var vxd = Vector128.Create(xd);
                    var vxmin = Vector128.Create(xmin);
                    for (; b + 4 <= count; b += 4, ab += 4 * stride)
                    {
                        var si = KQuantAvx2.Reduce4(Q4KFormat.Dot512(ab, w0, w1, w2, w3, s0, s1, s2, s3), Q4KFormat.Dot512(ab + stride, w0, w1, w2, w3, s0, s1, s2, s3),
                                                    Q4KFormat.Dot512(ab + 2 * stride, w0, w1, w2, w3, s0, s1, s2, s3), Q4KFormat.Dot512(ab + 3 * stride, w0, w1, w2, w3, s0, s1, s2, s3));
                        var mi = KQuantAvx2.Reduce4(Q4KFormat.MinDot(ab, mins), Q4KFormat.MinDot(ab + stride, mins),
                                                    Q4KFormat.MinDot(ab + 2 * stride, mins), Q4KFormat.MinDot(ab + 3 * stride, mins));
                        var ad = KQuantAvx2.Scales4(ab, stride);
                        var d = vxd * ad;
                        var dmin = vxmin * ad;
                        (Vector128.Load(acc + b) + (d * Vector128.ConvertToSingle(si) - dmin * Vector128.ConvertToSingle(mi))).Store(acc + b);
                    }
                }
                for (; b < count; b++, ab += stride)
                {
                    var a = (BlockQ8K*)ab;
                    var (sumi, summ) = Q4KFormat.Sum2(Q4KFormat.Dot512(ab, w0, w1, w2, w3, s0, s1, s2, s3), Q4KFormat.MinDot(ab, mins));
                    float d = xd * a->D, dmin = xmin * a->D;
                    acc[b] += d * sumi - dmin * summ;
                }
            }
            for (int b = 0; b < count; b++) y[(long)b * yStride + r] = acc[b];
        }
    }
}
