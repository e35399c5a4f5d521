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
    /// <summary>
    /// The path used by <see cref="QuantServe.Engine.Tensors.TensorFormat.DotRows"/> and activation quantization:
    /// AVX-512 where supported, except on AMD CPUs, whose AVX-512 units (Zen 4) split 512-bit integer multiply-adds
    /// into two 256-bit halves; there the AVX2 kernels measured as fast or faster (prose-15m shapes, batch 1 and 64).
    /// </summary>
    public static KQuantKernelPath Best { get; } =
        Avx512BW.IsSupported && !IsAmd() ? KQuantKernelPath.Avx512
        : Avx2.IsSupported ? KQuantKernelPath.Avx2
        : Ssse3.IsSupported ? KQuantKernelPath.Vector128
        : KQuantKernelPath.Scalar;

    private static bool IsAmd()
    {
        if (!X86Base.IsSupported) return false;
        var (_, ebx, ecx, edx) = X86Base.CpuId(0, 0);
        // Vendor string "AuthenticAMD" is spread over EBX, EDX, ECX.
        return ebx == 0x68747541 && edx == 0x69746e65 && ecx == 0x444d4163;
    }

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
