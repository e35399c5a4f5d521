using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>The quantized storage formats (ggml block types and QuantServe's own), for the registry.</summary>
public static class QuantFormats
{
    /// <summary>Every quantized format.</summary>
    public static IEnumerable<TensorFormat> All =>
    [
        .. RtnFormats.Common,
        Q4_0Format.Instance,
        Q4_1Format.Instance,
        Q5_0Format.Instance,
        Q5_1Format.Instance,
        Q8_0Format.Instance,
        Q2KFormat.Instance,
        Q3KFormat.Instance,
        Q4KFormat.Instance,
        Q5KFormat.Instance,
        Q6KFormat.Instance,
    ];
}
