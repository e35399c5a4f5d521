using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>Small AVX2 building blocks shared by the fused k-quant kernels.</summary>
internal static class KQuantAvx2
{
    /// <summary>Shuffle control picking byte 2k eight times, then byte 2k+1 eight times, for k = 0.</summary>
    public static readonly Vector128<byte> PairPick = Vector128.Create((byte)0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);

    /// <summary>
    /// Pair scales for weight vector <paramref name="k"/> (32 weights = groups 2k and 2k+1 of 16): int16 lanes 0..7 hold
    /// group 2k's scale, lanes 8..15 group 2k+1's. <paramref name="scales"/> holds 16 signed per-group scales.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<short> SignedPairScales(Vector128<byte> scales, int k)
        => Avx2.ConvertToVector256Int16(Ssse3.Shuffle(scales, PairPick + Vector128.Create((byte)(2 * k))).AsSByte());

    /// <summary>As <see cref="SignedPairScales"/> for unsigned per-group scales.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<short> UnsignedPairScales(Vector128<byte> scales, int k)
        => Avx2.ConvertToVector256Int16(Ssse3.Shuffle(scales, PairPick + Vector128.Create((byte)(2 * k))));

    /// <summary>Bits <paramref name="shift"/>.. of each byte, masked by <paramref name="mask"/> (byte shift built from a 16-bit shift).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> Bits(Vector256<byte> v, int shift, Vector256<byte> mask)
        => Vector256.ShiftRightLogical(v.AsUInt16(), shift).AsByte() & mask;

    /// <summary>Each byte shifted left by <paramref name="shift"/>; valid when no byte overflows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> Up(Vector256<byte> v, int shift) => Vector256.ShiftLeft(v.AsUInt16(), shift).AsByte();

    /// <summary>The lane sums of four vectors, [Σv0, Σv1, Σv2, Σv3], with one shared horizontal-add tree.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<int> Reduce4(Vector256<int> v0, Vector256<int> v1, Vector256<int> v2, Vector256<int> v3)
    {
        var t = Avx2.HorizontalAdd(Avx2.HorizontalAdd(v0, v1), Avx2.HorizontalAdd(v2, v3));
        return t.GetLower() + t.GetUpper();
    }

    /// <summary>The Q8_K scales of four consecutive activation blocks <paramref name="stride"/> bytes apart.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe Vector128<float> Scales4(byte* a, int stride)
        => Vector128.Create(*(float*)a, *(float*)(a + stride), *(float*)(a + 2 * stride), *(float*)(a + 3 * stride));

    /// <summary>Σ_k pmaddwd(pmaddubsw(w_k, a[32k..32k+32)), s_k) over the 8 weight vectors of one block.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe Vector256<int> Dot8(sbyte* a,
        Vector256<byte> w0, Vector256<byte> w1, Vector256<byte> w2, Vector256<byte> w3,
        Vector256<byte> w4, Vector256<byte> w5, Vector256<byte> w6, Vector256<byte> w7,
        Vector256<short> s0, Vector256<short> s1, Vector256<short> s2, Vector256<short> s3,
        Vector256<short> s4, Vector256<short> s5, Vector256<short> s6, Vector256<short> s7)
        => Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(w0, Vector256.Load(a)), s0)
         + Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(w1, Vector256.Load(a + 32)), s1)
         + Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(w2, Vector256.Load(a + 64)), s2)
         + Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(w3, Vector256.Load(a + 96)), s3)
         + Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(w4, Vector256.Load(a + 128)), s4)
         + Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(w5, Vector256.Load(a + 160)), s5)
         + Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(w6, Vector256.Load(a + 192)), s6)
         + Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(w7, Vector256.Load(a + 224)), s7);
}
