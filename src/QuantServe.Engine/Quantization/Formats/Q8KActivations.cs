using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using static QuantServe.Engine.Quantization.Formats.KQuantMath;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>ggml's block_q8_K: 256 activations as int8 with one float scale and the sums of each 16 quants.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public unsafe struct BlockQ8K
{
    /// <summary>Elements per block (ggml's QK_K).</summary>
    public const int Elements = 256;

    /// <summary>Scale: value ≈ D · Qs[i].</summary>
    public float D;

    /// <summary>Quants in −127..127.</summary>
    public fixed sbyte Qs[256];

    /// <summary>BSums[g] = Σ Qs[16g .. 16g+15] (lets kernels apply offsets and minimums per 16-group).</summary>
    public fixed short BSums[16];
}

/// <summary>
/// Q8_K activation quantization (ggml's quantize_row_q8_K), the vec_dot type of every k-quant weight format.
/// Per block of 256: max = the first element of largest magnitude, iscale = −127/max, Qs[i] = min(127, round(iscale·x[i]))
/// with round-half-to-even, D = 1/iscale, BSums[g] = Σ of each 16 quants. An all-zero block gets D = 0 and zero quants.
/// </summary>
public static unsafe class Q8KActivations
{
    /// <summary>Bytes of one block_q8_K (292).</summary>
    public const int BlockBytes = 292;

    /// <summary>Bytes of the prepared activations of a row of <paramref name="cols"/> (a multiple of 256) elements.</summary>
    public static int ActivationBytes(int cols) => cols / BlockQ8K.Elements * BlockBytes;

    /// <summary>Quantizes <paramref name="x"/> (length a multiple of 256) into Q8_K blocks with the fastest path.</summary>
    public static void Quantize(ReadOnlySpan<float> x, Span<byte> destination) => Quantize(x, destination, KQuantKernels.Best);

    /// <summary>Quantizes with an explicit kernel path; every path produces identical bytes.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    public static void Quantize(ReadOnlySpan<float> x, Span<byte> destination, KQuantKernelPath path)
    {
        if (x.Length % BlockQ8K.Elements != 0)
            throw new ArgumentException($"Q8_K activations need a multiple of 256 elements, got {x.Length}", nameof(x));
        int nb = x.Length / BlockQ8K.Elements;
        if (destination.Length < nb * BlockBytes)
            throw new ArgumentException($"destination holds {destination.Length} bytes, Q8_K needs {nb * BlockBytes}", nameof(destination));
        KQuantKernels.Check(path);
        fixed (float* px = x)
        fixed (byte* pd = destination)
        {
            for (int i = 0; i < nb; i++)
            {
                var y = (BlockQ8K*)(pd + i * BlockBytes);
                if (path == KQuantKernelPath.Scalar) QuantizeBlockScalar(px + i * 256, y);
                else QuantizeBlockVector(px + i * 256, y);
            }
        }
    }

    /// <summary>Dequantizes Q8_K blocks: y[i] = D · Qs[i].</summary>
    public static void Dequantize(ReadOnlySpan<byte> source, Span<float> destination)
    {
        int nb = destination.Length / BlockQ8K.Elements;
        fixed (byte* ps = source)
        fixed (float* pd = destination)
        {
            for (int i = 0; i < nb; i++)
            {
                var b = (BlockQ8K*)(ps + i * BlockBytes);
                for (int j = 0; j < 256; j++) pd[i * 256 + j] = b->D * b->Qs[j];
            }
        }
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static void QuantizeBlockScalar(float* x, BlockQ8K* y)
    {
        float max = 0, amax = 0;
        for (int j = 0; j < 256; ++j)
        {
            float ax = MathF.Abs(x[j]);
            if (ax > amax) { amax = ax; max = x[j]; }
        }
        if (amax == 0)
        {
            Unsafe.InitBlockUnaligned(y, 0, BlockBytes);
            return;
        }
        float iscale = -127f / max;
        for (int j = 0; j < 256; ++j) y->Qs[j] = (sbyte)Math.Min(127, NearestInt(iscale * x[j]));
        for (int g = 0; g < 16; ++g)
        {
            int sum = 0;
            for (int ii = 0; ii < 16; ++ii) sum += y->Qs[g * 16 + ii];
            y->BSums[g] = (short)sum;
        }
        y->D = 1 / iscale;
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static void QuantizeBlockVector(float* x, BlockQ8K* y)
    {
        // |x| max is order-independent; the signed max must be the first element reaching it, as in ggml.
        var absMask = Vector128.Create(0x7fffffff).AsSingle();
        var vmax = Vector128<float>.Zero;
        for (int j = 0; j < 256; j += 4)
            vmax = Vector128.Max(vmax, Vector128.Load(x + j) & absMask);
        float amax = MathF.Max(MathF.Max(vmax[0], vmax[1]), MathF.Max(vmax[2], vmax[3]));
        if (amax == 0)
        {
            Unsafe.InitBlockUnaligned(y, 0, BlockBytes);
            return;
        }
        float max = 0;
        for (int j = 0; j < 256; ++j)
        {
            if (MathF.Abs(x[j]) == amax) { max = x[j]; break; }
        }
        float iscale = -127f / max;
        var vs = Vector128.Create(iscale);
        var top = Vector128.Create(127);
        sbyte* qs = y->Qs;
        for (int g = 0; g < 16; g++)
        {
            float* xg = x + g * 16;
            // Round-half-to-even equals nearest_int for |v| ≤ 127.
            var q0 = Vector128.Min(Vector128.ConvertToInt32(Vector128.Round(Vector128.Load(xg) * vs)), top);
            var q1 = Vector128.Min(Vector128.ConvertToInt32(Vector128.Round(Vector128.Load(xg + 4) * vs)), top);
            var q2 = Vector128.Min(Vector128.ConvertToInt32(Vector128.Round(Vector128.Load(xg + 8) * vs)), top);
            var q3 = Vector128.Min(Vector128.ConvertToInt32(Vector128.Round(Vector128.Load(xg + 12) * vs)), top);
            var s = q0 + q1 + q2 + q3;
            y->BSums[g] = (short)Vector128.Sum(s);
            var n01 = Vector128.Narrow(q0, q1);
            var n23 = Vector128.Narrow(q2, q3);
            Vector128.Narrow(n01, n23).Store(qs + g * 16);
        }
        y->D = 1 / iscale;
    }
}
