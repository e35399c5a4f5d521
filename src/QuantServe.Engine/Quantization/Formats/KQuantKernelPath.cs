using System.Runtime.Intrinsics.X86;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>Instruction-set path of the k-quant (Q2_K..Q6_K, Q8_K) kernels.</summary>
public enum KQuantKernelPath
{
    /// <summary>Plain C# loops: the reference every vector path must reproduce.</summary>
    Scalar,

    /// <summary>128-bit SSSE3 integer multiply-add (pmaddubsw / pmaddwd).</summary>
    Vector128,

    /// <summary>256-bit AVX2.</summary>
    Avx2,

    /// <summary>512-bit AVX-512 F/BW.</summary>
    Avx512,
}

/// <summary>Chooses the fastest <see cref="KQuantKernelPath"/> the CPU supports.</summary>
public static class KQuantKernels
{
    /// <summary>The path used by <see cref="QuantServe.Engine.Tensors.TensorFormat.DotRows"/> and activation quantization.</summary>
    public static KQuantKernelPath Best { get; } =
        Avx512BW.IsSupported ? KQuantKernelPath.Avx512
        : Avx2.IsSupported ? KQuantKernelPath.Avx2
        : Ssse3.IsSupported ? KQuantKernelPath.Vector128
        : KQuantKernelPath.Scalar;

    /// <summary>Whether this CPU can run <paramref name="path"/> (tests use it to skip unsupported paths).</summary>
    public static bool IsSupported(KQuantKernelPath path) => path switch
    {
        KQuantKernelPath.Scalar => true,
        KQuantKernelPath.Vector128 => Ssse3.IsSupported,
        KQuantKernelPath.Avx2 => Avx2.IsSupported,
        KQuantKernelPath.Avx512 => Avx512BW.IsSupported,
        _ => false,
    };

    internal static KQuantKernelPath Check(KQuantKernelPath path) =>
        IsSupported(path) ? path : throw new PlatformNotSupportedException($"k-quant kernel path {path} is not supported by this CPU");
}
