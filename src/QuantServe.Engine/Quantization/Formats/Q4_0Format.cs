using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>ggml's <c>block_q4_0</c> (18 bytes): FP16 scale d, then 16 bytes of 4-bit quants — byte j holds element j in
/// its low nibble and element j+16 in its high nibble. Value = (q − 8)·d.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public unsafe struct BlockQ4_0
{
    /// <summary>Scale (FP16 bits).</summary>
    public ushort D;

    /// <summary>Packed nibbles.</summary>
    public fixed byte Qs[16];
}

/// <summary>
/// Q4_0: symmetric 4-bit, 32 weights per block, 4.5 bits/weight. Quantization (ggml <c>quantize_row_q4_0_ref</c>):
/// <c>max</c> = the element of largest magnitude (first one on ties), <c>d = max / −8</c>, <c>id = d ≠ 0 ? 1/d : 0</c>,
/// <c>q = min(15, trunc(x·id + 8.5))</c>. Dequantization: <c>x = (q − 8)·d</c>. Dot with Q8_0 activations.
/// </summary>
public sealed unsafe class Q4_0Format : LegacyQuantFormat
{
    /// <summary>The shared instance.</summary>
    public static Q4_0Format Instance { get; } = new();

    /// <inheritdoc />
    public override string Name => "Q4_0";

    /// <inheritdoc />
    public override GgmlType? Ggml => GgmlType.Q4_0;

    /// <inheritdoc />
    public override int BlockBytes => 18;

    /// <inheritdoc />
    public override bool UsesQ8_1 => false;

    /// <inheritdoc />
    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> destination)
    {
        CheckQuantizeArgs(x, destination);
        for (int i = 0; i < x.Length / 32; i++)
        {
            var xb = x.Slice(i * 32, 32);
            var yb = destination.Slice(i * 18, 18);
            float amax = 0, max = 0;
            for (int j = 0; j < 32; j++)
            {
                float v = xb[j];
                if (amax < MathF.Abs(v)) { amax = MathF.Abs(v); max = v; }
            }
            float d = max / -8f;
            float id = d != 0 ? 1.0f / d : 0.0f;
            BitConverter.TryWriteBytes(yb, GgmlFp16.FromFloat(d));
            for (int j = 0; j < 16; j++)
            {
                float x0 = xb[j] * id;
                float x1 = xb[16 + j] * id;
                int q0 = Math.Min(15, (int)(x0 + 8.5f));
                int q1 = Math.Min(15, (int)(x1 + 8.5f));
                yb[2 + j] = (byte)(q0 | (q1 << 4));
            }
        }
    }

    /// <inheritdoc />
    public override void DequantizeRow(ReadOnlySpan<byte> source, Span<float> destination)
    {
        CheckDequantizeArgs(source, destination);
        for (int i = 0; i < destination.Length / 32; i++)
        {
            var b = source.Slice(i * 18, 18);
            float d = GgmlFp16.ToFloat(BitConverter.ToUInt16(b));
            var y = destination.Slice(i * 32, 32);
            for (int j = 0; j < 16; j++)
            {
                y[j] = ((b[2 + j] & 0x0F) - 8) * d;
                y[j + 16] = ((b[2 + j] >> 4) - 8) * d;
            }
        }
    }

    /// <inheritdoc />
    public override void DotRows(WeightMatrix w, int rowStart, int rowEnd, ReadOnlySpan<byte> activations,
        int activationStride, int batch, Span<float> y, int yStride, LegacyKernelPath path)
        => LegacyDot.Rows<Q4_0Block>(Name, w, rowStart, rowEnd, activations, activationStride, batch, y, yStride, path);

    /// <inheritdoc />
    private protected override bool HasGemm => true;

    /// <inheritdoc />
    private protected override void Tile(byte* prepared, int stride, int nb, byte* tile) => LegacyGemm.TileQ4_0(prepared, stride, nb, tile);

    /// <inheritdoc />
    private protected override void DotRows(WeightMatrix w, int rowStart, int rowEnd, ReadOnlySpan<byte> activations,
        int activationStride, int batch, Span<float> y, int yStride, LegacyKernelPath path, ReadOnlySpan<byte> tiles)
        => LegacyDot.Rows<Q4_0Block>(Name, w, rowStart, rowEnd, activations, activationStride, batch, y, yStride, path, tiles);
}

/// <summary>Q4_0 block decoding for the shared kernels.</summary>
internal unsafe struct Q4_0Block : ILegacyBlock
{
    public static int BlockBytes => 18;
    public static bool HasMin => false;
    public static bool Signed => false;
    public static int Bias => 8;

    public static void Decode(byte* block, byte* values)
    {
        for (int j = 0; j < 16; j++)
        {
            values[j] = (byte)(block[2 + j] & 0x0F);
            values[j + 16] = (byte)(block[2 + j] >> 4);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<byte> Decode128(byte* block, out Vector128<byte> high) => LegacyBits.Nibbles128(block + 2, out high);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> Decode256(byte* block) => LegacyBits.Nibbles256(block + 2);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<byte> Decode512(byte* block) => LegacyBits.Nibbles512(block + 2, block + 18 + 2);
}
