using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Formats.Safetensors;

/// <summary>Element types of the safetensors format, named as they are spelled in a file's header.</summary>
public enum SafetensorsDType
{
    /// <summary>Boolean, one byte.</summary>
    BOOL,
    /// <summary>Unsigned 8-bit integer (packed quantized payloads).</summary>
    U8,
    /// <summary>Signed 8-bit integer.</summary>
    I8,
    /// <summary>FP8 with 4 exponent and 3 mantissa bits.</summary>
    F8_E4M3,
    /// <summary>FP8 with 5 exponent and 2 mantissa bits.</summary>
    F8_E5M2,
    /// <summary>Signed 16-bit integer.</summary>
    I16,
    /// <summary>Unsigned 16-bit integer.</summary>
    U16,
    /// <summary>IEEE 754 half precision.</summary>
    F16,
    /// <summary>bfloat16: the upper 16 bits of an IEEE 754 single.</summary>
    BF16,
    /// <summary>Signed 32-bit integer (GPTQ/AWQ packed weights and zero points).</summary>
    I32,
    /// <summary>Unsigned 32-bit integer.</summary>
    U32,
    /// <summary>IEEE 754 single precision.</summary>
    F32,
    /// <summary>Signed 64-bit integer.</summary>
    I64,
    /// <summary>Unsigned 64-bit integer.</summary>
    U64,
    /// <summary>IEEE 754 double precision.</summary>
    F64,
}

/// <summary>Sizes, names and ggml equivalents of <see cref="SafetensorsDType"/>.</summary>
public static class SafetensorsDTypes
{
    /// <summary>Bytes per element.</summary>
    public static int ElementSize(this SafetensorsDType t) => t switch
    {
        SafetensorsDType.BOOL or SafetensorsDType.U8 or SafetensorsDType.I8
            or SafetensorsDType.F8_E4M3 or SafetensorsDType.F8_E5M2 => 1,
        SafetensorsDType.I16 or SafetensorsDType.U16 or SafetensorsDType.F16 or SafetensorsDType.BF16 => 2,
        SafetensorsDType.I32 or SafetensorsDType.U32 or SafetensorsDType.F32 => 4,
        SafetensorsDType.I64 or SafetensorsDType.U64 or SafetensorsDType.F64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, "unknown safetensors dtype"),
    };

    /// <summary>Parses a header dtype string (exact, case-sensitive as the format defines it); null when unknown.</summary>
    public static SafetensorsDType? Parse(string name) => ByName.TryGetValue(name, out var t) ? t : null;

    private static readonly Dictionary<string, SafetensorsDType> ByName =
        Enum.GetValues<SafetensorsDType>().ToDictionary(t => t.ToString(), StringComparer.Ordinal);

    /// <summary>The ggml type holding the same elements, for the types QuantServe can compute on or store in GGUF.</summary>
    public static GgmlType? ToGgml(this SafetensorsDType t) => t switch
    {
        SafetensorsDType.F32 => GgmlType.F32,
        SafetensorsDType.F16 => GgmlType.F16,
        SafetensorsDType.BF16 => GgmlType.BF16,
        SafetensorsDType.F64 => GgmlType.F64,
        SafetensorsDType.I8 => GgmlType.I8,
        SafetensorsDType.I16 => GgmlType.I16,
        SafetensorsDType.I32 => GgmlType.I32,
        SafetensorsDType.I64 => GgmlType.I64,
        _ => null,
    };

    /// <summary>Whether the type is one of the float types a weight matrix or norm can be read from (F32, F16, BF16).</summary>
    public static bool IsFloatWeight(this SafetensorsDType t) =>
        t is SafetensorsDType.F32 or SafetensorsDType.F16 or SafetensorsDType.BF16;
}
