using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>Small AVX-512 building blocks shared by the fused k-quant kernels.</summary>
internal static unsafe class KQuantAvx512
{
    /// <summary>32 bytes at <paramref name="p"/> in both 256-bit halves.</summary>
    /// <remarks>Built from one 256-bit load: Avx512F.BroadcastVector256ToVector512 produced wrong lanes in these kernels on .NET 10.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<byte> Twice(byte* p)
    {
        var v = Vector256.Load(p);
        return Vector512.Create(v, v);
    }

    /// <summary>A 16-bit shift-count vector: <paramref name="low"/> for the lower 256 bits, <paramref name="high"/> for the upper.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<ushort> Shifts(int low, int high)
        => Vector512.Create(Vector256.Create((ushort)low), Vector256.Create((ushort)high));

    /// <summary>Bits selected by <paramref name="mask"/> after shifting each half of <paramref name="v"/> right by its own count.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<byte> Bits(Vector512<byte> v, Vector512<ushort> shifts, Vector512<byte> mask)
        => Avx512BW.ShiftRightLogicalVariable(v.AsUInt16(), shifts).AsByte() & mask;

    /// <summary>Each byte shifted left by <paramref name="shift"/>; valid when no byte overflows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<byte> Up(Vector512<byte> v, int shift) => Vector512.ShiftLeft(v.AsUInt16(), shift).AsByte();

    /// <summary>Permutation indices giving pair lane i of weight vector k (64 weights) the scale of group 4k + i/8.</summary>
    public static Vector512<short> GroupIndex(int k)
        => Vector512.Create((short)0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                            2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3) + Vector512.Create((short)(4 * k));
}
