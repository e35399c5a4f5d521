using System.Runtime.Intrinsics;

namespace QuantServe.Engine.Kernels.Cpu;

/// <summary>The instruction-set paths a kernel can take, widest last.</summary>
public enum SimdPath
{
    /// <summary>Plain scalar code: the reference every vector path is tested against.</summary>
    Scalar,
    /// <summary>128-bit vectors (SSE4/NEON).</summary>
    V128,
    /// <summary>256-bit vectors (AVX2 + FMA).</summary>
    V256,
    /// <summary>512-bit vectors (AVX-512F).</summary>
    V512,
}

/// <summary>
/// Which kernel path this machine runs. Production code always calls the public kernels, which use <see cref="Best"/>;
/// the path-taking internal overloads exist so tests can force each path and compare it with the scalar reference.
/// </summary>
public static class KernelPaths
{
    /// <summary>The widest path the hardware accelerates.</summary>
    public static readonly SimdPath Best =
        Vector512.IsHardwareAccelerated ? SimdPath.V512
        : Vector256.IsHardwareAccelerated ? SimdPath.V256
        : Vector128.IsHardwareAccelerated ? SimdPath.V128
        : SimdPath.Scalar;

    /// <summary>Every path this machine can execute (scalar up to <see cref="Best"/>).</summary>
    public static IReadOnlyList<SimdPath> Available =>
        Enum.GetValues<SimdPath>().Where(p => p <= Best).ToArray();
}
