using System.Numerics.Tensors;

namespace QuantServe.Engine.Kernels.Cpu;

/// <summary>The residual connection.</summary>
public static class ResidualAdd
{
    /// <summary><c>x[i] += delta[i]</c>, vectorised by <see cref="TensorPrimitives"/>.</summary>
    public static void Apply(Span<float> x, ReadOnlySpan<float> delta)
    {
        if (delta.Length != x.Length) throw new ArgumentException($"ResidualAdd: {x.Length} vs {delta.Length} elements");
        TensorPrimitives.Add(x, delta, x);
    }
}
