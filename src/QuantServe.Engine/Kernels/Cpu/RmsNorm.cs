using System.Numerics.Tensors;

namespace QuantServe.Engine.Kernels.Cpu;

/// <summary>Root-mean-square layer normalisation.</summary>
public static class RmsNorm
{
    /// <summary>
    /// <c>y[i] = x[i] · w[i] / √(Σ_j x[j]² / n + ε)</c> with n = x.Length; <paramref name="y"/> may be <paramref name="x"/>.
    /// Vectorised by <see cref="TensorPrimitives"/> (widest vector first, scalar tail).
    /// </summary>
    public static void Apply(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float eps, Span<float> y)
    {
        if (weight.Length != x.Length || y.Length < x.Length)
            throw new ArgumentException($"RmsNorm: x has {x.Length} elements, weight {weight.Length}, output {y.Length}");
        float scale = 1f / MathF.Sqrt(TensorPrimitives.SumOfSquares(x) / x.Length + eps);
        TensorPrimitives.Multiply(x, weight, y);
        TensorPrimitives.Multiply(y[..x.Length], scale, y);
    }
}
