using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static QuantServe.Engine.Quantization.Formats.KQuantAvx512;
using static QuantServe.Engine.Quantization.Formats.KQuantMath;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>Q3_K's fused AVX-512 kernel: each 64-weight register takes two 2-bit planes of one qs half plus their hmask bits.</summary>
public sealed unsafe partial class Q3KFormat
{
    [SkipLocalsInit]
    private protected override void DotRowRangeAvx512(byte* rows, long rowBytes, int rowCount, int nb, byte* act, int stride, int count, float* y, int yStride)
    {
        var m2 = Vector512.Create((byte)3);
        var one = Vector512.Create((byte)1);
        var lo01 = Shifts(0, 2); var lo23 = Shifts(4, 6);
        var hi0 = Shifts(0, 1); var hi1 = Shifts(2, 3); var hi2 = Shifts(4, 5); var hi3 = Shifts(6, 7);
        var idx0 = GroupIndex(0); var idx1 = GroupIndex(1); var idx2 = GroupIndex(2); var idx3 = GroupIndex(3);
        float* acc = stackalloc float[count];
        for (int r = 0; r < rowCount; r++)
        {
            byte* row = rows + r * rowBytes;
            new Span<float>(acc, count).Clear();
            for (int i = 0; i < nb; i++)
            {
                var x = (BlockQ3K*)(row + i * 110);
                float xd = Fp16ToFp32(x->D);
                var sc = Avx2.ConvertToVector256Int16(GroupScales(x->Scales).AsSByte());
                var sc512 = sc.ToVector512Unsafe();
                var s0 = Avx512BW.PermuteVar32x16(sc512, idx0);
                var s1 = Avx512BW.PermuteVar32x16(sc512, idx1);
                var s2 = Avx512BW.PermuteVar32x16(sc512, idx2);
                var s3 = Avx512BW.PermuteVar32x16(sc512, idx3);
                var hm = Twice(x->HMask);
                var q0 = Twice(x->Qs);
                var q1 = Twice(x->Qs + 32);
                var w0 = Bits(q0, lo01, m2) | Up(Bits(hm, hi0, one), 2);
                var w1 = Bits(q0, lo23, m2) | Up(Bits(hm, hi1, one), 2);
                var w2 = Bits(q1, lo01, m2) | Up(Bits(hm, hi2, one), 2);
                var w3 = Bits(q1, lo23, m2) | Up(Bits(hm, hi3, one), 2);
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
}
