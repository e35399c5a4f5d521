using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>ggml's <c>block_q8_0</c> (34 bytes): FP16 scale d, then 32 int8 quants. Value = q·d.
/// Also the layout of Q8_0 activations (<see cref="Q8Activations"/>).</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public unsafe struct BlockQ8_0
{
    /// <summary>Scale (FP16 bits).</summary>
    public ushort D;

    /// <summary>Quants.</summary>
    public fixed sbyte Qs[32];
}

/// <summary>
/// Q8_0: symmetric 8-bit, 32 weights per block, 8.5 bits/weight. Quantization (ggml <c>quantize_row_q8_0_ref</c>):
/// <c>d = amax / 127</c>, <c>id = d ≠ 0 ? 1/d : 0</c>, <c>q = round_half_away(x·id)</c>. Dequantization: <c>x = q·d</c>.
/// Dot with Q8_0 activations.
/// </summary>
public sealed unsafe class Q8_0Format : LegacyQuantFormat
{
    /// <summary>The shared instance.</summary>
    public static Q8_0Format Instance { get; } = new();

    /// <inheritdoc />
    public override string Name => "Q8_0";

    /// <inheritdoc />
    public override GgmlType? Ggml => GgmlType.Q8_0;

    /// <inheritdoc />
    public override int BlockBytes => 34;

    /// <inheritdoc />
    public override bool UsesQ8_1 => false;

    /// <inheritdoc />
    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> destination)
    {
        CheckQuantizeArgs(x, destination);
        for (int i = 0; i < x.Length / 32; i++)
        {
            var xb = x.Slice(i * 32, 32);
            var yb = destination.Slice(i * 34, 34);
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = MathF.Max(amax, MathF.Abs(xb[j]));
            float d = amax / 127f;
            float id = d != 0 ? 1.0f / d : 0.0f;
            BitConverter.TryWriteBytes(yb, GgmlFp16.FromFloat(d));
            for (int j = 0; j < 32; j++)
                yb[2 + j] = (byte)(sbyte)(int)MathF.Round(xb[j] * id, MidpointRounding.AwayFromZero);
        }
    }

    /// <inheritdoc />
    public override void DequantizeRow(ReadOnlySpan<byte> source, Span<float> destination)
    {
        CheckDequantizeArgs(source, destination);
        for (int i = 0; i < destination.Length / 32; i++)
        {
            var b = source.Slice(i * 34, 34);
            float d = GgmlFp16.ToFloat(BitConverter.ToUInt16(b));
            var y = destination.Slice(i * 32, 32);
            for (int j = 0; j < 32; j++) y[j] = (sbyte)b[2 + j] * d;
        }
    }

    /// <inheritdoc />
    public override void DotRows(WeightMatrix w, int rowStart, int rowEnd, ReadOnlySpan<byte> activations,
        int activationStride, int batch, Span<float> y, int yStride, LegacyKernelPath path)
        => LegacyDot.Rows<Q8_0Block>(Name, w, rowStart, rowEnd, activations, activationStride, batch, y, yStride, path);

    /// <inheritdoc />
    private protected override bool HasGemm => true;

    /// <inheritdoc />
    private protected override void Tile(byte* prepared, int stride, int nb, byte* tile) => LegacyGemm.TileQ8_0(prepared, stride, nb, tile);

    /// <inheritdoc />
    private protected override void DotRows(WeightMatrix w, int rowStart, int rowEnd, ReadOnlySpan<byte> activations,
        int activationStride, int batch, Span<float> y, int yStride, LegacyKernelPath path, ReadOnlySpan<byte> tiles)
        => LegacyDot.Rows<Q8_0Block>(Name, w, rowStart, rowEnd, activations, activationStride, batch, y, yStride, path, tiles);
}

/// <summary>Q8_0 block decoding for the shared kernels.</summary>
internal unsafe struct Q8_0Block : ILegacyBlock
{
    public static int BlockBytes => 34;
    public static bool HasMin => false;
    public static bool Signed => true;
    public static int Bias => 0;

    public static void Decode(byte* block, byte* values) => Buffer.MemoryCopy(block + 2, values, 32, 32);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<byte> Decode128(byte* block, out Vector128<byte> high)
    {
        high = Vector128.Load(block + 18);
        return Vector128.Load(block + 2);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> Decode256(byte* block) => Vector256.Load(block + 2);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<byte> Decode512(byte* block) => LegacyBits.Join(Vector256.Load(block + 2), Vector256.Load(block + 34 + 2));
}
