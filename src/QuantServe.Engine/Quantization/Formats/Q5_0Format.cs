using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>ggml's <c>block_q5_0</c> (22 bytes): FP16 scale d, 4 bytes qh (bit e = 5th bit of element e, little-endian),
/// then 16 bytes of low nibbles (element j low, j+16 high). Value = (q − 16)·d.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public unsafe struct BlockQ5_0
{
    /// <summary>Scale (FP16 bits).</summary>
    public ushort D;

    /// <summary>Fifth bits of the 32 quants.</summary>
    public fixed byte Qh[4];

    /// <summary>Packed low nibbles.</summary>
    public fixed byte Qs[16];
}

/// <summary>
/// Q5_0: symmetric 5-bit, 32 weights per block, 5.5 bits/weight. Quantization (ggml <c>quantize_row_q5_0_ref</c>):
/// <c>max</c> = the element of largest magnitude, <c>d = max / −16</c>, <c>id = d ≠ 0 ? 1/d : 0</c>,
/// <c>q = min(31, trunc(x·id + 16.5))</c>. Dequantization: <c>x = (q − 16)·d</c>. Dot with Q8_0 activations.
/// </summary>
public sealed unsafe class Q5_0Format : LegacyQuantFormat
{
    /// <summary>The shared instance.</summary>
    public static Q5_0Format Instance { get; } = new();

    /// <inheritdoc />
    public override string Name => "Q5_0";

    /// <inheritdoc />
    public override GgmlType? Ggml => GgmlType.Q5_0;

    /// <inheritdoc />
    public override int BlockBytes => 22;

    /// <inheritdoc />
    public override bool UsesQ8_1 => false;

    /// <inheritdoc />
    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> destination)
    {
        CheckQuantizeArgs(x, destination);
        for (int i = 0; i < x.Length / 32; i++)
        {
            var xb = x.Slice(i * 32, 32);
            var yb = destination.Slice(i * 22, 22);
            float amax = 0, max = 0;
            for (int j = 0; j < 32; j++)
            {
                float v = xb[j];
                if (amax < MathF.Abs(v)) { amax = MathF.Abs(v); max = v; }
            }
            float d = max / -16f;
            float id = d != 0 ? 1.0f / d : 0.0f;
            BitConverter.TryWriteBytes(yb, GgmlFp16.FromFloat(d));
            uint qh = 0;
            for (int j = 0; j < 16; j++)
            {
                float x0 = xb[j] * id;
                float x1 = xb[16 + j] * id;
                int q0 = Math.Min(31, (int)(x0 + 16.5f));
                int q1 = Math.Min(31, (int)(x1 + 16.5f));
                yb[6 + j] = (byte)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
                qh |= (uint)((q0 & 0x10) >> 4) << j;
                qh |= (uint)((q1 & 0x10) >> 4) << (j + 16);
            }
            BitConverter.TryWriteBytes(yb[2..], qh);
        }
    }

    /// <inheritdoc />
    public override void DequantizeRow(ReadOnlySpan<byte> source, Span<float> destination)
    {
        CheckDequantizeArgs(source, destination);
        for (int i = 0; i < destination.Length / 32; i++)
        {
            var b = source.Slice(i * 22, 22);
            float d = GgmlFp16.ToFloat(BitConverter.ToUInt16(b));
            uint qh = BitConverter.ToUInt32(b[2..]);
            var y = destination.Slice(i * 32, 32);
            for (int j = 0; j < 16; j++)
            {
                y[j] = (((b[6 + j] & 0x0F) | LegacyBits.HighBit(qh, j)) - 16) * d;
                y[j + 16] = (((b[6 + j] >> 4) | LegacyBits.HighBit(qh, j + 16)) - 16) * d;
            }
        }
    }

    /// <inheritdoc />
    public override void DotRows(WeightMatrix w, int rowStart, int rowEnd, ReadOnlySpan<byte> activations,
        int activationStride, int batch, Span<float> y, int yStride, LegacyKernelPath path)
        => LegacyDot.Rows<Q5_0Block>(Name, w, rowStart, rowEnd, activations, activationStride, batch, y, yStride, path);
}

/// <summary>Q5_0 block decoding for the shared kernels.</summary>
internal unsafe struct Q5_0Block : ILegacyBlock
{
    public static int BlockBytes => 22;
    public static bool HasMin => false;
    public static bool Signed => false;
    public static int Bias => 16;

    public static void Decode(byte* block, byte* values)
    {
        uint qh = *(uint*)(block + 2);
        for (int j = 0; j < 16; j++)
        {
            values[j] = (byte)((block[6 + j] & 0x0F) | LegacyBits.HighBit(qh, j));
            values[j + 16] = (byte)((block[6 + j] >> 4) | LegacyBits.HighBit(qh, j + 16));
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<byte> Decode128(byte* block, out Vector128<byte> high)
    {
        var lo = LegacyBits.Nibbles128(block + 6, out var hi);
        var hlo = LegacyBits.HighBits128(*(uint*)(block + 2), out var hhi);
        high = hi | hhi;
        return lo | hlo;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> Decode256(byte* block)
        => LegacyBits.Nibbles256(block + 6) | LegacyBits.HighBits256(*(uint*)(block + 2));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<byte> Decode512(byte* block)
        => LegacyBits.Nibbles512(block + 6, block + 22 + 6)
           | LegacyBits.HighBits512(*(uint*)(block + 2) | (ulong)*(uint*)(block + 22 + 2) << 32);
}
