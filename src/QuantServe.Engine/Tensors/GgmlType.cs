namespace QuantServe.Engine.Tensors;

/// <summary>
/// Element / block types with ggml's numeric ids, exactly as they appear in GGUF tensor infos.
/// QuantServe's own formats (integer groups, NF4, FP4, LLM.int8) are not ggml types and are not listed here;
/// they are described by their <see cref="TensorFormat"/> alone.
/// </summary>
public enum GgmlType : uint
{
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    IQ2_XXS = 16,
    IQ2_XS = 17,
    IQ3_XXS = 18,
    IQ1_S = 19,
    IQ4_NL = 20,
    IQ3_S = 21,
    IQ2_S = 22,
    IQ4_XS = 23,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    IQ1_M = 29,
    BF16 = 30,
    TQ1_0 = 34,
    TQ2_0 = 35,
    MXFP4 = 39,
}

/// <summary>Block geometry of each ggml type: elements per block and bytes per block (ggml's type_traits table).</summary>
public static class GgmlTypeInfo
{
    /// <summary>Returns (elements per block, bytes per block), or null for a type id QuantServe does not know.</summary>
    public static (int BlockSize, int TypeSize)? Geometry(GgmlType t) => t switch
    {
        GgmlType.F32 => (1, 4),
        GgmlType.F16 => (1, 2),
        GgmlType.BF16 => (1, 2),
        GgmlType.F64 => (1, 8),
        GgmlType.I8 => (1, 1),
        GgmlType.I16 => (1, 2),
        GgmlType.I32 => (1, 4),
        GgmlType.I64 => (1, 8),
        GgmlType.Q4_0 => (32, 18),
        GgmlType.Q4_1 => (32, 20),
        GgmlType.Q5_0 => (32, 22),
        GgmlType.Q5_1 => (32, 24),
        GgmlType.Q8_0 => (32, 34),
        GgmlType.Q8_1 => (32, 36),
        GgmlType.Q2_K => (256, 84),
        GgmlType.Q3_K => (256, 110),
        GgmlType.Q4_K => (256, 144),
        GgmlType.Q5_K => (256, 176),
        GgmlType.Q6_K => (256, 210),
        GgmlType.Q8_K => (256, 292),
        GgmlType.IQ2_XXS => (256, 66),
        GgmlType.IQ2_XS => (256, 74),
        GgmlType.IQ3_XXS => (256, 98),
        GgmlType.IQ1_S => (256, 50),
        GgmlType.IQ4_NL => (32, 18),
        GgmlType.IQ3_S => (256, 110),
        GgmlType.IQ2_S => (256, 82),
        GgmlType.IQ4_XS => (256, 136),
        GgmlType.IQ1_M => (256, 56),
        GgmlType.TQ1_0 => (256, 54),
        GgmlType.TQ2_0 => (256, 66),
        GgmlType.MXFP4 => (32, 17),
        _ => null,
    };

    /// <summary>Bytes taken by <paramref name="elements"/> elements of type <paramref name="t"/> (elements must be a multiple of the block size).</summary>
    public static long RowBytes(GgmlType t, long elements)
    {
        var g = Geometry(t) ?? throw new ArgumentException($"unknown ggml type {(uint)t}");
        if (elements % g.BlockSize != 0)
            throw new ArgumentException($"{t}: {elements} elements is not a multiple of the block size {g.BlockSize}");
        return elements / g.BlockSize * g.TypeSize;
    }
}
