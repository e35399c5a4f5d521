using System.Runtime.CompilerServices;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>
/// Scalar helpers shared by the k-quant reference quantizers, with ggml's exact arithmetic.
/// (The FP16 helpers duplicate the legacy formats' GgmlFp16 until both branches meet; then one should go.)
/// </summary>
internal static class KQuantMath
{
    /// <summary>ggml's GROUP_MAX_EPS: a group whose largest magnitude is below this quantizes to zero.</summary>
    public const float GroupMaxEps = 1e-15f;

    /// <summary>
    /// ggml's <c>nearest_int</c>: adds 1.5·2²³ so the FPU rounds to an integer (ties to even) in the low mantissa bits.
    /// Valid for |x| ≤ 4194303; outside that (or for NaN) it returns the same garbage as ggml.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int NearestInt(float x)
    {
        float v = x + 12582912f;
        return (BitConverter.SingleToInt32Bits(v) & 0x007fffff) - 0x00400000;
    }

    /// <summary>
    /// IEEE binary16 bits → float, exact for every input (normals, subnormals, ±0, ±inf, NaN), branch-light and
    /// call-free: the runtime's Half conversion is an out-of-line call, which forces kernels to spill vector registers.
    /// Normals: shift the exponent/mantissa into place and rescale by 2^-112; subnormals: build 0.5 + m·2^-24 and subtract 0.5.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Fp16ToFp32(ushort h)
    {
        uint w = (uint)h << 16;
        uint sign = w & 0x80000000u;
        uint twoW = w + w;
        float normalized = BitConverter.UInt32BitsToSingle((twoW >> 4) + (0xE0u << 23)) * 1.92592994e-34f; // 2^-112
        float denormalized = BitConverter.UInt32BitsToSingle((twoW >> 17) | (126u << 23)) - 0.5f;
        uint bits = twoW < (1u << 27) ? BitConverter.SingleToUInt32Bits(denormalized) : BitConverter.SingleToUInt32Bits(normalized);
        return BitConverter.UInt32BitsToSingle(sign | bits);
    }

    /// <summary>float → IEEE binary16 bits, rounding to nearest even (ggml's GGML_FP32_TO_FP16; <see cref="GgmlFp16.FromFloat"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort Fp32ToFp16(float f) => GgmlFp16.FromFloat(f);

    /// <summary>Unpacks the 6-bit scale and min of sub-block <paramref name="j"/> (0..7) from Q4_K/Q5_K's 12 scale bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void ScaleMinK4(int j, byte* q, out byte d, out byte m)
    {
        if (j < 4)
        {
            d = (byte)(q[j] & 63);
            m = (byte)(q[j + 4] & 63);
        }
        else
        {
            d = (byte)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
            m = (byte)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
        }
    }
}
