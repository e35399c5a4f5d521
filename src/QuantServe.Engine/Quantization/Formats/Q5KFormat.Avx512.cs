using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static QuantServe.Engine.Quantization.Formats.KQuantAvx512;
using static QuantServe.Engine.Quantization.Formats.KQuantMath;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>Q5_K's fused AVX-512 kernel: Q4_K's nibble layout plus the fifth bit from qh, broadcast to both halves.</summary>
public sealed unsafe partial class Q5KFormat
{
    [SkipLocalsInit]
    private protected override void DotRowRangeAvx512(byte* rows, long rowBytes, int rowCount, int nb, byte* act, int stride, int count, float* y, int yStride)
    {
        var m4 = Vector512.Create((byte)0x0F);
        var one = Vector512.Create((byte)1);
        var nibble = Shifts(0, 4);
        var hi0 = Shifts(0, 1); var hi1 = Shifts(2, 3); var hi2 = Shifts(4, 5); var hi3 = Shifts(6, 7);
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
                var x = (BlockQ5K*)(row + i * 176);
                float xd = Fp16ToFp32(x->D), xmin = Fp16ToFp32(x->DMin);
                var sm = Q4KFormat.ScalesAndMins(x->Scales);
                var sm16 = Avx2.ConvertToVector256Int16(sm).ToVector512Unsafe();
                var s0 = Avx512BW.PermuteVar32x16(sm16, idx0);
                var s1 = Avx512BW.PermuteVar32x16(sm16, idx1);
                var s2 = Avx512BW.PermuteVar32x16(sm16, idx2);
                var s3 = Avx512BW.PermuteVar32x16(sm16, idx3);
                var mins = Avx2.ConvertToVector256Int16(Ssse3.Shuffle(sm, minPairs));
                var h = Twice(x->Qh);
                var w0 = Bits(Twice(x->Qs), nibble, m4) | Up(Bits(h, hi0, one), 4);
                var w1 = Bits(Twice(x->Qs + 32), nibble, m4) | Up(Bits(h, hi1, one), 4);
                var w2 = Bits(Twice(x->Qs + 64), nibble, m4) | Up(Bits(h, hi2, one), 4);
                var w3 = Bits(Twice(x->Qs + 96), nibble, m4) | Up(Bits(h, hi3, one), 4);
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
