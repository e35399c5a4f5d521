using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Quantization.Presets;

/// <summary>
/// One of llama.cpp's file types (<c>llama_ftype</c>) as <c>llama-quantize</c> names it: the default ggml type of the
/// quantized matrices and the <c>general.file_type</c> id the output carries. Which matrices deviate from the default
/// is decided per tensor by <see cref="LlamaTensorTypeRules"/>.
/// </summary>
/// <param name="Name">The recipe name (<c>Q4_K_M</c>).</param>
/// <param name="FileType">llama.cpp's <c>general.file_type</c> id.</param>
/// <param name="DefaultType">The ggml type a matrix gets when no rule promotes it.</param>
/// <param name="Description">One line for help texts.</param>
public sealed record GgufPreset(string Name, int FileType, GgmlType DefaultType, string Description)
{
    /// <summary>Whether the default type is a block-quantized type (then llama.cpp's per-tensor rules apply).</summary>
    public bool IsQuantized => DefaultType is not (GgmlType.F32 or GgmlType.F16 or GgmlType.BF16);

    /// <inheritdoc />
    public override string ToString() => Name;
}
