using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>ggml's <c>block_q8_1</c>: 32 int8 quants with FP16 scale d and FP16 s = d·Σqs (36 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public unsafe struct BlockQ8_1
{
    /// <summary>Scale (FP16 bits).</summary>
    public ushort D;

    /// <summary>d times the sum of <see cref="Qs"/> (FP16 bits).</summary>
    public ushort S;

    /// <summary>Quants.</summary>
    public fixed sbyte Qs[32];
}

/// <summary>
/// Activation quantization for the legacy formats' dot products, exactly as ggml's CPU backend does it on x86
/// (<c>quantize_row_q8_0</c> / <c>quantize_row_q8_1</c>, the vec_dot_type path), per block of 32:
/// <c>amax = max|x_j|</c>, <c>d = amax / 127</c>, <c>id = amax ≠ 0 ? 127 / amax : 0</c>, <c>q_j = round_half_even(x_j·id)</c>,
/// d stored as FP16; Q8_1 adds <c>s = FP16(d · Σq_j)</c> with the unrounded float d.
/// (ggml's <c>*_ref</c> variants divide by d and round half away from zero instead; they are used for stored Q8_0 weights,
/// see <see cref="Q8_0Format.QuantizeRow"/>.)
/// <para>A prepared vector is the ggml blocks (<see cref="BlockQ8_0"/> / <see cref="BlockQ8_1"/>, byte-identical to ggml's),
/// then, at <see cref="ScalesOffset"/>, every block's d widened to float, then (Q8_1 only) every block's s as float:
/// the kernels load four scales with one instruction instead of four FP16 conversions.</para>
/// </summary>
public static unsafe class Q8Activations
{
    /// <summary>Bytes of one <c>block_q8_0</c> (FP16 d + 32 int8).</summary>
    public const int Q8_0BlockBytes = 34;

    /// <summary>Bytes of one <c>block_q8_1</c> (FP16 d, FP16 s, 32 int8).</summary>
    public const int Q8_1BlockBytes = 36;

    /// <summary>Bytes of a prepared Q8_0 vector of <paramref name="cols"/> activations (blocks + float scales).</summary>
    public static int Q8_0Bytes(int cols) => ScalesOffset(cols / 32, false) + cols / 32 * sizeof(float);

    /// <summary>Bytes of a prepared Q8_1 vector of <paramref name="cols"/> activations (blocks + float scales + float sums).</summary>
    public static int Q8_1Bytes(int cols) => ScalesOffset(cols / 32, true) + cols / 32 * 2 * sizeof(float);

    /// <summary>Byte offset of the float scale array after <paramref name="blocks"/> blocks (4-byte aligned).</summary>
    public static int ScalesOffset(int blocks, bool withSum) => withSum ? blocks * Q8_1BlockBytes : (blocks * Q8_0BlockBytes + 3) & ~3;

    /// <summary>Quantizes <paramref name="x"/> (a multiple of 32 long) to a prepared Q8_0 vector in <paramref name="destination"/>.</summary>
    public static void QuantizeQ8_0(ReadOnlySpan<float> x, Span<byte> destination) => Quantize(x, destination, false, LegacyKernels.Best);

    /// <summary>Quantizes <paramref name="x"/> (a multiple of 32 long) to a prepared Q8_1 vector in <paramref name="destination"/>.</summary>
    public static void QuantizeQ8_1(ReadOnlySpan<float> x, Span<byte> destination) => Quantize(x, destination, true, LegacyKernels.Best);

    /// <summary>Either block type on an explicit path (tests compare the vector path with the scalar one).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    internal static void Quantize(ReadOnlySpan<float> x, Span<byte> destination, bool withSum, LegacyKernelPath path)
    {
        int blockBytes = withSum ? Q8_1BlockBytes : Q8_0BlockBytes;
        if (x.Length % 32 != 0) throw new ArgumentException($"activation length {x.Length} is not a multiple of 32", nameof(x));
        int nb = x.Length / 32;
        int total = withSum ? Q8_1Bytes(x.Length) : Q8_0Bytes(x.Length);
        if (destination.Length < total)
            throw new ArgumentException($"destination holds {destination.Length} bytes, needs {total}", nameof(destination));
        bool vector = path != LegacyKernelPath.Scalar && Vector256.IsHardwareAccelerated;
        fixed (float* px = x)
        fixed (byte* pd = destination)
        {
            float* scales = (float*)(pd + ScalesOffset(nb, withSum));
            for (byte* pad = pd + nb * blockBytes; pad < (byte*)scales; pad++) *pad = 0;
            for (int i = 0; i < nb; i++)
            {
                float* xb = px + i * 32;
                byte* yb = pd + i * blockBytes;
                if (vector) BlockVector(xb, yb, withSum);
                else BlockScalar(xb, yb, withSum);
                scales[i] = GgmlFp16.ToFloat(*(ushort*)yb);
                if (withSum) scales[nb + i] = GgmlFp16.ToFloat(*(ushort*)(yb + 2));
            }
        }
    }
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static void BlockScalar(float* x, byte* y, bool withSum)
    {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = MathF.Max(amax, MathF.Abs(x[j]));
        float d = amax / 127f;
        float id = amax != 0 ? 127f / amax : 0f;
        *(ushort*)y = GgmlFp16.FromFloat(d);
        sbyte* qs = (sbyte*)(y + (withSum ? 4 : 2));
        int sum = 0;
        for (int j = 0; j < 32; j++)
        {
            int q = (int)MathF.Round(x[j] * id, MidpointRounding.ToEven);
            qs[j] = (sbyte)q;
            sum += q;
        }
        if (withSum) *(ushort*)(y + 2) = GgmlFp16.FromFloat(d * sum);
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static void BlockVector(float* x, byte* y, bool withSum)
    {
        var v0 = Vector256.Load(x);
        var v1 = Vector256.Load(x + 8);
        var v2 = Vector256.Load(x + 16);
        var v3 = Vector256.Load(x + 24);
        var m = Vector256.Max(Vector256.Max(Vector256.Abs(v0), Vector256.Abs(v1)), Vector256.Max(Vector256.Abs(v2), Vector256.Abs(v3)));
        var h = Vector128.Max(m.GetLower(), m.GetUpper());
        float amax = MathF.Max(MathF.Max(h[0], h[1]), MathF.Max(h[2], h[3]));
        float d = amax / 127f;
        float id = amax != 0 ? 127f / amax : 0f;
        *(ushort*)y = GgmlFp16.FromFloat(d);
        var mul = Vector256.Create(id);
        var i0 = Vector256.ConvertToInt32(Vector256.Round(v0 * mul));
        var i1 = Vector256.ConvertToInt32(Vector256.Round(v1 * mul));
        var i2 = Vector256.ConvertToInt32(Vector256.Round(v2 * mul));
        var i3 = Vector256.ConvertToInt32(Vector256.Round(v3 * mul));
        var packed = Vector256.Narrow(Vector256.Narrow(i0, i1), Vector256.Narrow(i2, i3));
        packed.Store((sbyte*)(y + (withSum ? 4 : 2)));
        if (withSum) *(ushort*)(y + 2) = GgmlFp16.FromFloat(d * Vector256.Sum(i0 + i1 + i2 + i3));
    }
}
