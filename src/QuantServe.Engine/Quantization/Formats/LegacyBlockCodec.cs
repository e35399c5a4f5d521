using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>
/// How one legacy format's 32-weight block decodes into 32 small integers, at every vector width. One struct per
/// format implements it so the JIT compiles a specialised copy of each shared kernel in <see cref="LegacyDot"/>.
/// Decoded values are in element order and before the bias: 0..15 (Q4), 0..31 (Q5) or signed bytes (Q8_0).
/// </summary>
internal unsafe interface ILegacyBlock
{
    /// <summary>Bytes per block (ggml's sizeof(block_*)).</summary>
    static abstract int BlockBytes { get; }

    /// <summary>The block stores a min m (FP16 at byte 2) and the dot product uses Q8_1 activations (Q4_1, Q5_1).</summary>
    static abstract bool HasMin { get; }

    /// <summary>The decoded values are signed bytes (Q8_0).</summary>
    static abstract bool Signed { get; }

    /// <summary>Subtracted from each unsigned decoded value: 8 (Q4_0), 16 (Q5_0), 0 otherwise.</summary>
    static abstract int Bias { get; }

    /// <summary>Writes the 32 decoded values of <paramref name="block"/> to <paramref name="values"/>.</summary>
    static abstract void Decode(byte* block, byte* values);

    /// <summary>Elements 0..15 of the block; elements 16..31 in <paramref name="high"/>.</summary>
    static abstract Vector128<byte> Decode128(byte* block, out Vector128<byte> high);

    /// <summary>All 32 elements of the block.</summary>
    static abstract Vector256<byte> Decode256(byte* block);

    /// <summary>The 32 elements of <paramref name="block"/> then the 32 of the block that follows it.</summary>
    static abstract Vector512<byte> Decode512(byte* block);
}

/// <summary>Bit-unpacking helpers shared by the 4- and 5-bit legacy formats.</summary>
internal static unsafe class LegacyBits
{
    // Constants are written inline (Vector*.Create with literal arguments) so the JIT embeds them at every tier.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<byte> Spread128Low() => Vector128.Create((byte)0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<byte> Spread128High() => Vector128.Create((byte)2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);

    /// <summary>Two 256-bit halves as one 512-bit vector (vinserti64x4; <c>Vector512.Create(lo, hi)</c> made the JIT spill).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<byte> Join(Vector256<byte> lo, Vector256<byte> hi) => Avx512F.InsertVector256(lo.ToVector512Unsafe(), hi, 1);

    /// <summary>Two 256-bit halves as one 512-bit vector.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<sbyte> Join(Vector256<sbyte> lo, Vector256<sbyte> hi) => Avx512F.InsertVector256(lo.ToVector512Unsafe(), hi, 1);

    /// <summary>Low nibbles of the 16 bytes at <paramref name="qs"/> (elements 0..15); high nibbles in <paramref name="high"/> (16..31).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<byte> Nibbles128(byte* qs, out Vector128<byte> high)
    {
        var v = Vector128.Load(qs);
        var mask = Vector128.Create((byte)0x0F);
        high = Vector128.ShiftRightLogical(v.AsUInt16(), 4).AsByte() & mask;
        return v & mask;
    }

    /// <summary>The 32 nibbles at <paramref name="qs"/> in element order (low nibbles, then high nibbles).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> Nibbles256(byte* qs)
    {
        var lo = Nibbles128(qs, out var hi);
        return Vector256.Create(lo, hi);
    }

    /// <summary>Nibbles of two blocks (16 bytes each at <paramref name="qs0"/> and <paramref name="qs1"/>) in element order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<byte> Nibbles512(byte* qs0, byte* qs1)
    {
        var v = Vector256.Create(Vector128.Load(qs0), Vector128.Load(qs1));
        var mask = Vector256.Create((byte)0x0F);
        var lo = v & mask;                                                      // lo0 | lo1
        var hi = Vector256.ShiftRightLogical(v.AsUInt16(), 4).AsByte() & mask; // hi0 | hi1
        return Avx512F.PermuteVar8x64(Join(lo, hi).AsUInt64(), Vector512.Create(0UL, 1, 4, 5, 2, 3, 6, 7)).AsByte();
    }

    /// <summary>0x10 where bit e of <paramref name="qh"/> is set, for elements e = 0..15 (16..31 in <paramref name="high"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<byte> HighBits128(uint qh, out Vector128<byte> high)
    {
        var v = Vector128.Create(qh).AsByte();
        var five = Vector128.Create((byte)0x10);
        var bits = Vector128.Create(0x8040201008040201UL).AsByte();
        high = Vector128.Equals(Vector128.Shuffle(v, Spread128High()) & bits, bits) & five;
        return Vector128.Equals(Vector128.Shuffle(v, Spread128Low()) & bits, bits) & five;
    }

    /// <summary>0x10 where bit e of <paramref name="qh"/> is set, for elements e = 0..31.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> HighBits256(uint qh)
    {
        var spread = Vector256.Create((byte)0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
        var bits = Vector256.Create(0x8040201008040201UL).AsByte();
        var v = Avx2.Shuffle(Vector256.Create(qh).AsByte(), spread);
        return Vector256.Equals(v & bits, bits) & Vector256.Create((byte)0x10);
    }

    /// <summary>0x10 where bit e of <paramref name="qh"/> is set, for elements e = 0..63 (two blocks' qh words).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<byte> HighBits512(ulong qh)
    {
        // Each 128-bit lane holds the whole qword twice; lane L spreads bytes 2L and 2L+1.
        var spread = Vector512.Create((byte)0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3,
            4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7);
        var bits = Vector512.Create(0x8040201008040201UL).AsByte();
        var v = Avx512BW.Shuffle(Vector512.Create(qh).AsByte(), spread);
        return Vector512.Equals(v & bits, bits) & Vector512.Create((byte)0x10);
    }

    /// <summary>Scalar form: the 5th bit (0x10) of element <paramref name="e"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static byte HighBit(uint qh, int e) => (byte)(((qh >> e) & 1) << 4);
}
