using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>ggml's <c>block_q5_1</c> (24 bytes): FP16 scale d, FP16 min m, 4 bytes qh (5th bits), 16 bytes of low
/// nibbles (element j low, j+16 high). Value = q·d + m.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public unsafe struct BlockQ5_1
{
    /// <summary>Scale (FP16 bits).</summary>
    public ushort D;

    /// <summary>Minimum (FP16 bits).</summary>
    public ushort M;

    /// <summary>Fifth bits of the 32 quants.</summary>
    public fixed byte Qh[4];

    /// <summary>Packed low nibbles.</summary>
    public fixed byte Qs[16];
}

/// <summary>
/// Q5_1: asymmetric 5-bit, 32 weights per block, 6 bits/weight. Quantization (ggml <c>quantize_row_q5_1_ref</c>):
/// <c>d = (max − min) / 31</c>, <c>id = d ≠ 0 ? 1/d : 0</c>, <c>q = (uint8)trunc((x − min)·id + 0.5)</c> (no clamp, as
/// in ggml), m = min. Dequantization: <c>x = q·d + m</c>. Dot with Q8_1 activations: <c>(d·d_a)·Σq·a + m·s_a</c>.
/// </summary>
public sealed unsafe class Q5_1Format : LegacyQuantFormat
{
    /// <summary>The shared instance.</summary>
    public static Q5_1Format Instance { get; } = new();

    /// <inheritdoc />
    public override string Name => "Q5_1";

    /// <inheritdoc />
    public override GgmlType? Ggml => GgmlType.Q5_1;

    /// <inheritdoc />
    public override int BlockBytes => 24;

    /// <inheritdoc />
    public override bool UsesQ8_1 => true;

    /// <inheritdoc />
    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> destination)
    {
        CheckQuantizeArgs(x, destination);
        for (int i = 0; i < x.Length / 32; i++)
        {
            var xb = x.Slice(i * 32, 32);
            var yb = destination.Slice(i * 24, 24);
            float min = float.MaxValue, max = -float.MaxValue;
            for (int j = 0; j < 32; j++)
            {
                float v = xb[j];
                if (v < min) min = v;
                if (v > max) max = v;
            }
            float d = (max - min) / 31f;
            float id = d != 0 ? 1.0f / d : 0.0f;
            BitConverter.TryWriteBytes(yb, GgmlFp16.FromFloat(d));
            BitConverter.TryWriteBytes(yb[2..], GgmlFp16.FromFloat(min));
            uint qh = 0;
            for (int j = 0; j < 16; j++)
            {
                float x0 = (xb[j] - min) * id;
                float x1 = (xb[16 + j] - min) * id;
                int q0 = (byte)(int)(x0 + 0.5f);
                int q1 = (byte)(int)(x1 + 0.5f);
                yb[8 + j] = (byte)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
                qh |= (uint)((q0 & 0x10) >> 4) << j;
                qh |= (uint)((q1 & 0x10) >> 4) << (j + 16);
            }
            BitConverter.TryWriteBytes(yb[4..], qh);
        }
    }

    /// <inheritdoc />
    public override void DequantizeRow(ReadOnlySpan<byte> source, Span<float> destination)
    {
        CheckDequantizeArgs(source, destination);
        for (int i = 0; i < destination.Length / 32; i++)
        {
            var b = source.Slice(i * 24, 24);
            float d = GgmlFp16.ToFloat(BitConverter.ToUInt16(b));
            float m = GgmlFp16.ToFloat(BitConverter.ToUInt16(b[2..]));
            uint qh = BitConverter.ToUInt32(b[4..]);
            var y = destination.Slice(i * 32, 32);
            for (int j = 0; j < 16; j++)
            {
                y[j] = ((b[8 + j] & 0x0F) | LegacyBits.HighBit(qh, j)) * d + m;
                y[j + 16] = ((b[8 + j] >> 4) | LegacyBits.HighBit(qh, j + 16)) * d + m;
            }
        }
    }

    /// <inheritdoc />
    public override void DotRows(WeightMatrix w, int rowStart, int rowEnd, ReadOnlySpan<byte> activations,
        int activationStride, int batch, Span<float> y, int yStride, LegacyKernelPath path)
        => LegacyDot.Rows<Q5_1Block>(Name, w, rowStart, rowEnd, activations, activationStride, batch, y, yStride, path);
}

/// <summary>Q5_1 block decoding for the shared kernels.</summary>
internal unsafe struct Q5_1Block : ILegacyBlock
{
    public static int BlockBytes => 24;
    public static bool HasMin => true;
    public static bool Signed => false;
    public static int Bias => 0;

    public static void Decode(byte* block, byte* values)
    {
        uint qh = *(uint*)(block + 4);
        for (int j = 0; j < 16; j++)
        {
            values[j] = (byte)((block[8 + j] & 0x0F) | LegacyBits.HighBit(qh, j));
            values[j + 16] = (byte)((block[8 + j] >> 4) | LegacyBits.HighBit(qh, j + 16));
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<byte> Decode128(byte* block, out Vector128<byte> high)
    {
        var lo = LegacyBits.Nibbles128(block + 8, out var hi);
        var hlo = LegacyBits.HighBits128(*(uint*)(block + 4), out var hhi);
        high = hi | hhi;
        return lo | hlo;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> Decode256(byte* block)
        => LegacyBits.Nibbles256(block + 8) | LegacyBits.HighBits256(*(uint*)(block + 4));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<byte> Decode512(byte* block)
        => LegacyBits.Nibbles512(block + 8, block + 24 + 8)
           | LegacyBits.HighBits512(*(uint*)(block + 4) | (ulong)*(uint*)(block + 24 + 4) << 32);
}
