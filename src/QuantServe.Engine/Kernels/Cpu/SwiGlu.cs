using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace QuantServe.Engine.Kernels.Cpu;

/// <summary>The SwiGLU activation of the Llama MLP.</summary>
public static class SwiGlu
{
    /// <summary>
    /// In place on <paramref name="gate"/>: <c>gate[i] = SiLU(gate[i]) · up[i]</c> with <c>SiLU(g) = g / (1 + e^(−g))</c>.
    /// Widest vector first (Vector512, Vector256, Vector128), scalar tail.
    /// </summary>
    public static void Apply(Span<float> gate, ReadOnlySpan<float> up) => Apply(KernelPaths.Best, gate, up);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Apply(SimdPath path, Span<float> gate, ReadOnlySpan<float> up)
    {
        if (up.Length != gate.Length) throw new ArgumentException($"SwiGlu: gate has {gate.Length} elements, up {up.Length}");
        ref float g = ref MemoryMarshal.GetReference(gate);
        ref float u = ref MemoryMarshal.GetReference(up);
        int n = gate.Length, i = 0;
        if (path >= SimdPath.V512)
            for (; i + 16 <= n; i += 16)
            {
                var gv = Vector512.LoadUnsafe(ref g, (nuint)i);
                (gv / (Vector512<float>.One + Vector512.Exp(-gv)) * Vector512.LoadUnsafe(ref u, (nuint)i)).StoreUnsafe(ref g, (nuint)i);
            }
        if (path >= SimdPath.V256)
            for (; i + 8 <= n; i += 8)
            {
                var gv = Vector256.LoadUnsafe(ref g, (nuint)i);
                (gv / (Vector256<float>.One + Vector256.Exp(-gv)) * Vector256.LoadUnsafe(ref u, (nuint)i)).StoreUnsafe(ref g, (nuint)i);
            }
        if (path >= SimdPath.V128)
            for (; i + 4 <= n; i += 4)
            {
                var gv = Vector128.LoadUnsafe(ref g, (nuint)i);
                (gv / (Vector128<float>.One + Vector128.Exp(-gv)) * Vector128.LoadUnsafe(ref u, (nuint)i)).StoreUnsafe(ref g, (nuint)i);
            }
        for (; i < n; i++)
        {
            float gi = Unsafe.Add(ref g, i);
            Unsafe.Add(ref g, i) = gi / (1f + MathF.Exp(-gi)) * Unsafe.Add(ref u, i);
        }
    }
}
