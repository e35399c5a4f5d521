using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace QuantServe.Engine.Tensors.Formats;

/// <summary>Reads elements of a stored row as floats, at each vector width. Element indices are counted in elements, not bytes.</summary>
internal unsafe interface IElementDecoder
{
    /// <summary>Element <paramref name="i"/> as a float.</summary>
    static abstract float Scalar(byte* row, int i);
    /// <summary>Elements i..i+15.</summary>
    static abstract Vector512<float> Load512(byte* row, int i);
    /// <summary>Elements i..i+7.</summary>
    static abstract Vector256<float> Load256(byte* row, int i);
    /// <summary>Elements i..i+3.</summary>
    static abstract Vector128<float> Load128(byte* row, int i);
}

/// <summary>IEEE binary32 elements: read as they are.</summary>
internal readonly unsafe struct F32Decoder : IElementDecoder
{
    public static float Scalar(byte* row, int i) => ((float*)row)[i];
    public static Vector512<float> Load512(byte* row, int i) => Vector512.Load((float*)row + i);
    public static Vector256<float> Load256(byte* row, int i) => Vector256.Load((float*)row + i);
    public static Vector128<float> Load128(byte* row, int i) => Vector128.Load((float*)row + i);
}

/// <summary>
/// IEEE binary16 elements. .NET exposes no F16C/AVX-512 half-conversion instruction, so the vector paths widen the
/// 16-bit patterns and rebuild the float exactly: magnitude bits shifted into place (h &amp; 0x7FFF) &lt;&lt; 13 and
/// multiplied by 2^112 (which rescales the exponent bias from 15 to 127 and also normalises subnormals), exponent
/// forced to all-ones for Inf/NaN, then the sign bit copied. The result equals <c>(float)Half</c> bit for bit.
/// </summary>
internal readonly unsafe struct F16Decoder : IElementDecoder
{
    private const uint MagnitudeMask = 0x7FFF;
    private const uint InfNanThreshold = 0x7C00u << 13;
    private const uint ExponentAllOnes = 0x7F800000;
    private const float Rebias = 5.192296858534828e33f; // 2^112

    public static float Scalar(byte* row, int i) => (float)BitConverter.UInt16BitsToHalf(((ushort*)row)[i]);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load512(byte* row, int i)
    {
        var h = Vector256.Load((ushort*)row + i);
        Vector512<uint> u = Avx512F.IsSupported ? Avx512F.ConvertToVector512UInt32(h) : Vector512.WidenLower(h.ToVector512Unsafe());
        var em = (u & Vector512.Create(MagnitudeMask)) << 13;
        var f = (em.AsSingle() * Vector512.Create(Rebias)).AsUInt32();
        f = Vector512.ConditionalSelect(Vector512.GreaterThanOrEqual(em, Vector512.Create(InfNanThreshold)), em | Vector512.Create(ExponentAllOnes), f);
        return (f | ((u >> 15) << 31)).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load256(byte* row, int i)
    {
        var h = Vector128.Load((ushort*)row + i);
        Vector256<uint> u = Avx2.IsSupported ? Avx2.ConvertToVector256Int32(h).AsUInt32() : Vector256.WidenLower(h.ToVector256Unsafe());
        var em = (u & Vector256.Create(MagnitudeMask)) << 13;
        var f = (em.AsSingle() * Vector256.Create(Rebias)).AsUInt32();
        f = Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(em, Vector256.Create(InfNanThreshold)), em | Vector256.Create(ExponentAllOnes), f);
        return (f | ((u >> 15) << 31)).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Load128(byte* row, int i)
    {
        var u = Vector128.WidenLower(Vector128.CreateScalarUnsafe(*(ulong*)((ushort*)row + i)).AsUInt16());
        var em = (u & Vector128.Create(MagnitudeMask)) << 13;
        var f = (em.AsSingle() * Vector128.Create(Rebias)).AsUInt32();
        f = Vector128.ConditionalSelect(Vector128.GreaterThanOrEqual(em, Vector128.Create(InfNanThreshold)), em | Vector128.Create(ExponentAllOnes), f);
        return (f | ((u >> 15) << 31)).AsSingle();
    }
}

/// <summary>bfloat16 elements: the upper 16 bits of a binary32, so widening and shifting left by 16 is exact.</summary>
internal readonly unsafe struct BF16Decoder : IElementDecoder
{
    public static float Scalar(byte* row, int i) => BitConverter.Int32BitsToSingle(((ushort*)row)[i] << 16);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load512(byte* row, int i)
    {
        var h = Vector256.Load((ushort*)row + i);
        Vector512<uint> u = Avx512F.IsSupported ? Avx512F.ConvertToVector512UInt32(h) : Vector512.WidenLower(h.ToVector512Unsafe());
        return (u << 16).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load256(byte* row, int i)
    {
        var h = Vector128.Load((ushort*)row + i);
        Vector256<uint> u = Avx2.IsSupported ? Avx2.ConvertToVector256Int32(h).AsUInt32() : Vector256.WidenLower(h.ToVector256Unsafe());
        return (u << 16).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Load128(byte* row, int i) =>
        (Vector128.WidenLower(Vector128.CreateScalarUnsafe(*(ulong*)((ushort*)row + i)).AsUInt16()) << 16).AsSingle();
}

/// <summary>
/// IEEE binary16 elements known to be finite (no exponent-31 patterns; see <see cref="F16Format"/>, which checks each
/// matrix once). Three operations per vector instead of seven: sign-extend the 16-bit pattern so the sign lands on bits
/// 31..28 after <c>&lt;&lt; 13</c>, keep bit 31 and the exponent/mantissa bits (mask 0x8FFFE000), multiply by 2^112.
/// Exact for every finite half, subnormals and signed zeros included.
/// </summary>
internal readonly unsafe struct F16FiniteDecoder : IElementDecoder
{
    private const int Mask = unchecked((int)0x8FFFE000);
    private const float Rebias = 5.192296858534828e33f; // 2^112

    public static float Scalar(byte* row, int i) => (float)BitConverter.UInt16BitsToHalf(((ushort*)row)[i]);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load512(byte* row, int i)
    {
        var h = Vector256.Load((short*)row + i);
        Vector512<int> s = Avx512F.IsSupported ? Avx512F.ConvertToVector512Int32(h) : Vector512.WidenLower(h.ToVector512Unsafe());
        return ((s << 13) & Vector512.Create(Mask)).AsSingle() * Vector512.Create(Rebias);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load256(byte* row, int i)
    {
        var h = Vector128.Load((short*)row + i);
        Vector256<int> s = Avx2.IsSupported ? Avx2.ConvertToVector256Int32(h) : Vector256.WidenLower(h.ToVector256Unsafe());
        return ((s << 13) & Vector256.Create(Mask)).AsSingle() * Vector256.Create(Rebias);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Load128(byte* row, int i)
    {
        var s = Vector128.WidenLower(Vector128.CreateScalarUnsafe(*(long*)((short*)row + i)).AsInt16());
        return ((s << 13) & Vector128.Create(Mask)).AsSingle() * Vector128.Create(Rebias);
    }
}
