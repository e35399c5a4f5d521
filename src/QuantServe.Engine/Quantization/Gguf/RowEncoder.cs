using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using QuantServe.Engine.Quantization.Formats;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Quantization.Gguf;

/// <summary>
/// Encodes one row of floats as one row of a ggml type, the way llama-quantize does: F32 verbatim, F16 rounded to
/// nearest-even, BF16 rounded to nearest-even (NaN kept quiet), block formats through their bit-exact reference
/// quantizers (k-quants take the row's importance weights when given; the legacy formats have no weighted quantizer and
/// ignore them).
/// </summary>
public abstract class RowEncoder
{
    /// <summary>The output type.</summary>
    public abstract GgmlType Type { get; }

    /// <summary>Encodes <paramref name="x"/> into <paramref name="destination"/> (exactly one row's bytes).</summary>
    public abstract void Encode(ReadOnlySpan<float> x, Span<byte> destination, ReadOnlySpan<float> importance);

    /// <summary>Whether <see cref="Encode"/> uses importance weights.</summary>
    public virtual bool UsesImportance => false;

    /// <summary>The encoder for <paramref name="type"/>; throws <see cref="NotSupportedException"/> for a type QuantServe cannot produce.</summary>
    public static RowEncoder For(GgmlType type) => type switch
    {
        GgmlType.F32 => new F32Encoder(),
        GgmlType.F16 => new F16Encoder(),
        GgmlType.BF16 => new BF16Encoder(),
        _ => TensorFormats.ForGgml(type) switch
        {
            LegacyQuantFormat legacy => new LegacyEncoder(legacy, type),
            KQuantFormat k => new KQuantEncoder(k, type),
            _ => throw new NotSupportedException($"QuantServe cannot quantize to {type}"),
        },
    };

    /// <summary>ggml's fp32 → bf16 conversion: round to nearest even, NaN forced quiet.</summary>
    public static ushort ToBF16(float f)
    {
        uint u = BitConverter.SingleToUInt32Bits(f);
        if ((u & 0x7fffffff) > 0x7f800000) return (ushort)((u >> 16) | 64);
        return (ushort)((u + (0x7fff + ((u >> 16) & 1))) >> 16);
    }

    private sealed class F32Encoder : RowEncoder
    {
        public override GgmlType Type => GgmlType.F32;
        public override void Encode(ReadOnlySpan<float> x, Span<byte> destination, ReadOnlySpan<float> importance)
            => MemoryMarshal.AsBytes(x).CopyTo(destination);
    }

    private sealed class F16Encoder : RowEncoder
    {
        public override GgmlType Type => GgmlType.F16;
        public override void Encode(ReadOnlySpan<float> x, Span<byte> destination, ReadOnlySpan<float> importance)
            => TensorPrimitives.ConvertToHalf(x, MemoryMarshal.Cast<byte, Half>(destination)[..x.Length]);
    }

    private sealed class BF16Encoder : RowEncoder
    {
        public override GgmlType Type => GgmlType.BF16;
        public override void Encode(ReadOnlySpan<float> x, Span<byte> destination, ReadOnlySpan<float> importance)
        {
            var d = MemoryMarshal.Cast<byte, ushort>(destination);
            for (int i = 0; i < x.Length; i++) d[i] = ToBF16(x[i]);
        }
    }

    private sealed class LegacyEncoder(LegacyQuantFormat format, GgmlType type) : RowEncoder
    {
        public override GgmlType Type => type;
        public override void Encode(ReadOnlySpan<float> x, Span<byte> destination, ReadOnlySpan<float> importance)
            => format.QuantizeRow(x, destination);
    }

    private sealed class KQuantEncoder(KQuantFormat format, GgmlType type) : RowEncoder
    {
        public override GgmlType Type => type;
        public override bool UsesImportance => true;
        public override void Encode(ReadOnlySpan<float> x, Span<byte> destination, ReadOnlySpan<float> importance)
            => format.QuantizeRow(x, destination, importance);
    }
}
