using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Quantization.Gguf;

/// <summary>
/// Where <see cref="GgufQuantizer"/> can run the k-quant scale searches instead of the CPU (a GPU). An accelerator must
/// write exactly the bytes of the CPU's reference quantizer (<c>KQuantFormat.QuantizeRow</c>) for the same input.
/// </summary>
public interface IKQuantAccelerator
{
    /// <summary>What runs the work, for log lines.</summary>
    string Name { get; }

    /// <summary>Whether <see cref="Quantize"/> takes <paramref name="type"/>.</summary>
    bool Supports(GgmlType type);

    /// <summary>
    /// Quantizes <paramref name="rows"/> rows of <paramref name="cols"/> floats (row-major <paramref name="x"/>) to
    /// <paramref name="type"/> into <paramref name="destination"/> (rows × row bytes). <paramref name="importance"/> is
    /// empty or one weight per column, shared by every row (an imatrix row).
    /// </summary>
    void Quantize(GgmlType type, ReadOnlySpan<float> x, int rows, int cols, ReadOnlySpan<float> importance, Span<byte> destination);
}
