using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>QuantServe's own formats by name: the fixed ones (<c>nf4</c>, <c>nf4-dq</c>, <c>fp4</c>, <c>llm-int8</c>)
/// and the parameterised integer family (<c>intB[-gG|-pt][-asym]</c>, any group size).</summary>
public static class RtnFormats
{
    /// <summary>The commonly used instances, registered by name at start-up.</summary>
    public static IEnumerable<TensorFormat> Common =>
    [
        new IntGroupFormat(8, 0, false),
        new IntGroupFormat(8, 0, true),
        new IntGroupFormat(8, 0, false, perTensor: true),
        new IntGroupFormat(8, 128, false),
        new IntGroupFormat(4, 128, false),
        new IntGroupFormat(4, 128, true),
        new IntGroupFormat(4, 64, false),
        new IntGroupFormat(4, 32, false),
        new IntGroupFormat(4, 32, true),
        new IntGroupFormat(3, 128, false),
        new IntGroupFormat(3, 64, true),
        new IntGroupFormat(2, 64, true),
        CodebookFormat.Nf4,
        CodebookFormat.Nf4DoubleQuant,
        CodebookFormat.Fp4,
        LlmInt8Format.Instance,
    ];

    /// <summary>
    /// The format named <paramref name="name"/>, or null when it is none of QuantServe's own. Integer formats with any
    /// group size are created on demand (<see cref="TensorFormats.ForName"/> registers them on first use), with the
    /// per-channel spelling <c>-g0</c> normalised to <c>intB</c>.
    /// </summary>
    public static RtnFormat? Parse(string name) =>
        name.ToLowerInvariant() switch
        {
            "nf4" => CodebookFormat.Nf4,
            "nf4-dq" => CodebookFormat.Nf4DoubleQuant,
            "fp4" => CodebookFormat.Fp4,
            "llm-int8" => LlmInt8Format.Instance,
            _ => IntGroupFormat.Parse(name),
        };
}
