using System.Numerics.Tensors;

namespace QuantServe.Engine.Kernels.Cpu;

/// <summary>Numerically stable softmax.</summary>
public static class Softmax
{
    /// <summary>
    /// In place: <c>x[i] = e^(x[i] − m) / Σ_j e^(x[j] − m)</c> with m = max_j x[j], so no exponent overflows.
    /// Vectorised by <see cref="TensorPrimitives"/>. An empty span is left alone.
    /// </summary>
    public static void InPlace(Span<float> x)
    {
        if (x.IsEmpty) return;
        float max = TensorPrimitives.Max(x);
        TensorPrimitives.Subtract(x, max, x);
        TensorPrimitives.Exp(x, x);
        float sum = TensorPrimitives.Sum(x);
        TensorPrimitives.Divide(x, sum, x);
    }
}
