using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>
/// The integer core shared by the k-quant vector paths: weights unpacked to one unsigned byte per element (0..63)
/// and per-16-group int16 scales expanded to one scale per pair of elements.
/// </summary>
internal static unsafe class KQuantDot
{
    /// <summary>
    /// Σ_{g=0..15} scale_g · Σ_{i=16g..16g+15} q[i]·a[i] over 256 elements, exact in int32.
    /// <paramref name="scalePairs"/> holds 128 int16: element pair p (elements 2p, 2p+1) uses scalePairs[p] (= scale of group p/8).
    /// Requires q ≤ 127 − no int16 saturation in pmaddubsw since |a| ≤ 127 and q ≤ 63.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int ScaledDot(byte* q, sbyte* a, short* scalePairs, KQuantKernelPath path)
    {
        if (path == KQuantKernelPath.Avx512)
        {
            var acc = Vector512<int>.Zero;
            for (int k = 0; k < 256; k += 64)
            {
                var p = Avx512BW.MultiplyAddAdjacent(Vector512.Load(q + k), Vector512.Load(a + k));
                acc += Avx512BW.MultiplyAddAdjacent(p, Vector512.Load(scalePairs + k / 2));
            }
            return Vector512.Sum(acc);
        }
        if (path == KQuantKernelPath.Avx2)
        {
            var acc = Vector256<int>.Zero;
            for (int k = 0; k < 256; k += 32)
            {
                var p = Avx2.MultiplyAddAdjacent(Vector256.Load(q + k), Vector256.Load(a + k));
                acc += Avx2.MultiplyAddAdjacent(p, Vector256.Load(scalePairs + k / 2));
            }
            return Vector256.Sum(acc);
        }
        {
            var acc = Vector128<int>.Zero;
            for (int k = 0; k < 256; k += 16)
            {
                var p = Ssse3.MultiplyAddAdjacent(Vector128.Load(q + k), Vector128.Load(a + k));
                acc += Sse2.MultiplyAddAdjacent(p, Vector128.Load(scalePairs + k / 2));
            }
            return Vector128.Sum(acc);
        }
    }

    /// <summary>Expands 16 per-group scales to the 128 pair scales <see cref="ScaledDot"/> reads.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void ExpandScales16(int* scales, short* scalePairs)
    {
        for (int g = 0; g < 16; g++) Vector128.Create((short)scales[g]).Store(scalePairs + 8 * g);
    }

    /// <summary>Σ_g c[g] · bsums[g] for the 16 group sums of a Q8_K block.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int GroupSum(int* c, short* bsums)
    {
        int s = 0;
        for (int g = 0; g < 16; g++) s += c[g] * bsums[g];
        return s;
    }
}
