using QuantServe.Engine.Tensors.Formats;

namespace QuantServe.Engine.Tensors;

/// <summary>The unquantized storage formats (F32, F16, BF16).</summary>
public static class FloatFormats
{
    /// <summary>Every float format, for the registry.</summary>
    public static IEnumerable<TensorFormat> All => [F32Format.Instance, F16Format.Instance, BF16Format.Instance];
}
