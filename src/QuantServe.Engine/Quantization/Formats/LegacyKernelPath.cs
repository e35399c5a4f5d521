using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>Instruction-set path of the legacy block kernels (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and their Q8 activations).</summary>
public enum LegacyKernelPath
{
    /// <summary>Plain C# loops: the reference every vector path must reproduce.</summary>
    Scalar,

    /// <summary>Portable 128-bit <see cref="System.Runtime.Intrinsics.Vector128"/> code (SSE / NEON), one block per step.</summary>
    Vector128,

    /// <summary>256-bit AVX2 + FMA (vpmaddubsw / vpmaddwd), one block per step.</summary>
    Avx2,

    /// <summary>512-bit AVX-512 F/BW, two blocks per step.</summary>
    Avx512,
}

/// <summary>Chooses the fastest <see cref="LegacyKernelPath"/> the CPU supports.</summary>
public static class LegacyKernels
{
    /// <summary>The path used by <see cref="QuantServe.Engine.Tensors.TensorFormat.DotRows"/> and activation quantization.</summary>
    public static LegacyKernelPath Best { get; } =
        IsSupported(LegacyKernelPath.Avx512) ? LegacyKernelPath.Avx512
        : IsSupported(LegacyKernelPath.Avx2) ? LegacyKernelPath.Avx2
        : IsSupported(LegacyKernelPath.Vector128) ? LegacyKernelPath.Vector128
        : LegacyKernelPath.Scalar;

    /// <summary>Whether this CPU can run <paramref name="path"/> (tests use it to skip unsupported paths).</summary>
    public static bool IsSupported(LegacyKernelPath path) => path switch
    {
        LegacyKernelPath.Scalar => true,
        LegacyKernelPath.Vector128 => Vector128.IsHardwareAccelerated,
        LegacyKernelPath.Avx2 => Avx2.IsSupported && Fma.IsSupported,
        LegacyKernelPath.Avx512 => Avx512BW.IsSupported && Avx512F.IsSupported && Fma.IsSupported,
        _ => false,
    };

    internal static LegacyKernelPath Check(LegacyKernelPath path) =>
        IsSupported(path) ? path : throw new PlatformNotSupportedException($"legacy kernel path {path} is not supported by this CPU");
}
