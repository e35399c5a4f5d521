using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>ggml's <c>block_q4_1</c> (20 bytes): FP16 scale d, FP16 min m, then 16 bytes of nibbles (element j low,
/// element j+16 high). Value = q·d + m.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public unsafe struct BlockQ4_1
{
    /// <summary>Scale (FP16 bits).</summary>
    public ushort D;

    /// <summary>Minimum (FP16 bits).</summary>
    public ushort M;

    /// <summary>Packed nibbles.</summary>
    public fixed byte Qs[16];
}

/// <summary>
/// Q4_1: asymmetric 4-bit, 32 weights per block, 5 bits/weight. Quantization (ggml <c>quantize_row_q4_1_ref</c>):
/// <c>d = (max − min) / 15</c>, <c>id = d ≠ 0 ? 1/d : 0</c>, <c>q = min(15, trunc((x − min)·id + 0.5))</c>, m = min.
/// Dequantization: <c>x = q·d + m</c>. Dot with Q8_1 activations: <c>(d·d_a)·Σq·a + m·s_a</c>.
/// </summary>
public sealed unsafe class Q4_1Format : LegacyQuantFormat
{
    /// <summary>The shared instance.</summary>
    public static Q4_1Format Instance { get; } = new();

    /// <inheritdoc />
    public override string Name => "Q4_1";

    /// <inheritdoc />
    public override GgmlType? Ggml => GgmlType.Q4_1;

    /// <inheritdoc />
    public override int BlockBytes => 20;

    /// <inheritdoc />
    public override bool UsesQ8_1 => true;

    /// <inheritdoc />
    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> destination)
    {
        CheckQuantizeArgs(x, destination);
        for (int i = 0; i < x.Length / 32; i++)
        {
            var xb = x.Slice(i * 32, 32);
            var yb = destination.Slice(i * 20, 20);
            float min = float.MaxValue, max = -float.MaxValue;
            for (int j = 0; j < 32; j++)
            {
                float v = xb[j];
                if (v < min) min = v;
                if (v > max) max = v;
            }
            float d = (max - min) / 15f;
            float id = d != 0 ? 1.0f / d : 0.0f;
            BitConverter.TryWriteBytes(yb, GgmlFp16.FromFloat(d));
            BitConverter.TryWriteBytes(yb[2..], GgmlFp16.FromFloat(min));
            for (int j = 0; j < 16; j++)
            {
                float x0 = (xb[j] - min) * id;
                float x1 = (xb[16 + j] - min) * id;
                int q0 = Math.Min(15, (int)(x0 + 0.5f));
                int q1 = Math.Min(15, (int)(x1 + 0.5f));
                yb[4 + j] = (byte)(q0 | (q1 << 4));
            }
        }
    }

    /// <inheritdoc />
    public override void DequantizeRow(ReadOnlySpan<byte> source, Span<float> destination)
    {
        CheckDequantizeArgs(source, destination);
        for (int i = 0; i < destination.Length / 32; i++)
        {
            var b = source.Slice(i * 20, 20);
            float d = GgmlFp16.ToFloat(BitConverter.ToUInt16(b));
            float m = GgmlFp16.ToFloat(BitConverter.ToUInt16(b[2..]));
            var y = destination.Slice(i * 32, 32);
            for (int j = 0; j < 16; j++)
            {
                y[j] = (b[4 + j] & 0x0F) * d + m;
                y[j + 16] = (b[4 + j] >> 4) * d + m;
            }
        }
    }

    /// <inheritdoc />
    public override void DotRows(WeightMatrix w, int rowStart, int rowEnd, ReadOnlySpan<byte> activations,
        int activationStride, int batch, Span<float> y, int yStride, LegacyKernelPath path)
        => LegacyDot.Rows<Q4_1Block>(Name, w, rowStart, rowEnd, activations, activationStride, batch, y, yStride, path);
}

/// <summary>Q4_1 block decoding for the shared kernels.</summary>
internal unsafe struct Q4_1Block : ILegacyBlock
{
    public static int BlockBytes => 20;
    public static bool HasMin => true;
    public static bool Signed => false;
    public static int Bias => 0;

    public static void Decode(byte* block, byte* values)
    {
        for (int j = 0; j < 16; j++)
        {
            values[j] = (byte)(block[4 + j] & 0x0F);
            values[j + 16] = (byte)(block[4 + j] >> 4);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<byte> Decode128(byte* block, out Vector128<byte> high) => LegacyBits.Nibbles128(block + 4, out high);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> Decode256(byte* block) => LegacyBits.Nibbles256(block + 4);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<byte> Decode512(byte* block) => LegacyBits.Nibbles512(block + 4, block + 20 + 4);
}
