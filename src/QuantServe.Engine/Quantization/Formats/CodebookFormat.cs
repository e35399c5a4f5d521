using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using QuantServe.Engine.Kernels.Cpu;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>
/// bitsandbytes-style 4-bit codebook formats (<c>nf4</c>, <c>nf4-dq</c>, <c>fp4</c>): blocks of 64 consecutive weights
/// of a row (the last block shorter) share one absmax scale; each weight is the index of the nearest of 16 code values
/// <c>c_k</c> (in [−1, 1]) to <c>x / absmax</c>. Dequantization: <c>x = absmax · c_code</c>.
/// <para>Row layout (nb = ⌈cols / 64⌉ blocks): the scales, then nb × 32 code bytes where byte j of a block holds the code
/// of element j in its low nibble and of element j + 32 in its high nibble (codes past the width are 0).
/// Plain formats store nb float32 absmax values. <c>nf4-dq</c> double-quantizes them as bitsandbytes'
/// <c>compress_statistics</c> does, but per row so rows stay self-contained: a float32 offset (the mean of the row's absmax
/// values), then ⌈nb / 256⌉ float32 scales <c>e = max|absmax − offset| / 127</c> over blocks of 256 absmax values,
/// then nb int8 codes <c>k = round_half_even((absmax − offset) / e)</c> (padded to 4 bytes); absmax is recovered as
/// <c>offset + e · k</c>, and the weight codes are chosen against that recovered value. (bitsandbytes uses one offset per
/// tensor and its dynamic 8-bit map instead of linear int8.)</para>
/// <para>Dot product with F32 activations (zero-padded to whole blocks): per block
/// <c>y += absmax · Σ_j c[code_j] · x_j</c>, the codebook looked up with vpermps (AVX-512: one 16-entry permute; AVX2:
/// two 8-entry permutes and a blend) fused with FMA.</para>
/// </summary>
public sealed unsafe class CodebookFormat : RtnFormat
{
    /// <summary>bitsandbytes' NF4 code values (quantiles of N(0,1), normalised to [−1, 1], exact 0).</summary>
    public static readonly float[] Nf4Values =
    [
        -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f,
        -0.18477343022823334f, -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f,
        0.24611230194568634f, 0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f,
    ];

    /// <summary>bitsandbytes' FP4 (E2M1) code values as its dequantization tree (<c>dDequantizeFP4Tree</c>) gives them:
    /// bit 3 is the sign, magnitudes 0, 0.0052083, 0.6667, 1, 0.3333, 0.5, 0.1667, 0.25 for codes 0..7.</summary>
    public static readonly float[] Fp4Values = BuildFp4();

    private static float[] BuildFp4()
    {
        float[] mag = [0f, 5.208333333e-03f, 0.66666667f, 1.0f, 0.33333333f, 0.5f, 0.16666667f, 0.25f];
        var v = new float[16];
        for (int i = 0; i < 8; i++) { v[i] = mag[i]; v[i + 8] = -mag[i]; }
        return v;
    }

    /// <summary>NF4, absmax in float32.</summary>
    public static CodebookFormat Nf4 { get; } = new("nf4", Nf4Values, false);

    /// <summary>NF4 with double-quantized absmax values.</summary>
    public static CodebookFormat Nf4DoubleQuant { get; } = new("nf4-dq", Nf4Values, true);

    /// <summary>FP4 (E2M1), absmax in float32.</summary>
    public static CodebookFormat Fp4 { get; } = new("fp4", Fp4Values, false);

    private const int BlockSize = 64;
    private const int DqBlock = 256;
    private readonly float[] _lut;
    private readonly GCHandle _lutHandle;
    private readonly float* _lutPtr;

    private CodebookFormat(string name, float[] values, bool doubleQuant)
    {
        Name = name;
        _lut = values;
        _lutHandle = GCHandle.Alloc(_lut, GCHandleType.Pinned);
        _lutPtr = (float*)_lutHandle.AddrOfPinnedObject();
        DoubleQuant = doubleQuant;
    }

    /// <inheritdoc />
    public override string Name { get; }

    /// <summary>Whether block scales are double-quantized.</summary>
    public bool DoubleQuant { get; }

    /// <summary>The 16 code values.</summary>
    public ReadOnlySpan<float> Values => _lut;

    private static int Blocks(int cols) => (cols + BlockSize - 1) / BlockSize;

    private int ScaleBytes(int cols)
    {
        int nb = Blocks(cols);
        if (nb == 0) return 0;
        return DoubleQuant ? 4 + 4 * ((nb + DqBlock - 1) / DqBlock) + ((nb + 3) & ~3) : 4 * nb;
    }

    /// <inheritdoc />
    public override long RowBytes(int cols) => ScaleBytes(cols) + Blocks(cols) * 32L;

    /// <summary>Prepared activation: the F32 vector zero-padded to whole blocks of 64.</summary>
    public override int ActivationBytes(int cols) => Blocks(cols) * BlockSize * sizeof(float);

    /// <inheritdoc />
    public override void PrepareActivation(ReadOnlySpan<float> x, Span<byte> destination)
    {
        int bytes = ActivationBytes(x.Length);
        if (destination.Length < bytes) throw new ArgumentException($"{Name}: activation buffer holds {destination.Length} bytes, needs {bytes}");
        MemoryMarshal.AsBytes(x).CopyTo(destination);
        destination[(x.Length * 4)..bytes].Clear();
    }

    private int Nearest(float v)
    {
        int best = 0;
        float bestErr = float.PositiveInfinity;
        for (int k = 0; k < 16; k++)
        {
            float e = MathF.Abs(v - _lut[k]);
            if (e < bestErr) { bestErr = e; best = k; }
        }
        return best;
    }

    /// <inheritdoc />
    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> destination)
    {
        CheckRow(x.Length, destination.Length);
        int cols = x.Length, nb = Blocks(cols);
        var dst = destination[..(int)RowBytes(cols)];
        dst.Clear();
        var absmax = new float[nb];
        for (int b = 0; b < nb; b++)
        {
            float m = 0;
            foreach (float v in x.Slice(b * BlockSize, Math.Min(BlockSize, cols - b * BlockSize))) m = MathF.Max(m, MathF.Abs(v));
            absmax[b] = m;
        }
        if (DoubleQuant && nb > 0)
        {
            float offset = 0;
            foreach (float m in absmax) offset += m;
            offset /= nb;
            Unsafe.WriteUnaligned(ref dst[0], offset);
            int ndq = (nb + DqBlock - 1) / DqBlock;
            var codes = MemoryMarshal.Cast<byte, sbyte>(dst.Slice(4 + 4 * ndq, nb));
            for (int q = 0; q < ndq; q++)
            {
                int end = Math.Min(nb, (q + 1) * DqBlock);
                float dev = 0;
                for (int b = q * DqBlock; b < end; b++) dev = MathF.Max(dev, MathF.Abs(absmax[b] - offset));
                float e = dev / 127f;
                Unsafe.WriteUnaligned(ref dst[4 + 4 * q], e);
                for (int b = q * DqBlock; b < end; b++)
                {
                    int k = e > 0 ? Math.Clamp((int)MathF.Round((absmax[b] - offset) / e, MidpointRounding.ToEven), -127, 127) : 0;
                    codes[b] = (sbyte)k;
                    absmax[b] = offset + e * k;
                }
            }
        }
        else MemoryMarshal.AsBytes(absmax.AsSpan()).CopyTo(dst);

        var packed = dst[ScaleBytes(cols)..];
        for (int b = 0; b < nb; b++)
        {
            float inv = absmax[b] > 0 ? 1f / absmax[b] : 0f;
            int len = Math.Min(BlockSize, cols - b * BlockSize);
            var block = packed.Slice(b * 32, 32);
            for (int j = 0; j < len; j++)
            {
                int code = Nearest(x[b * BlockSize + j] * inv);
                if (j < 32) block[j] |= (byte)code;
                else block[j - 32] |= (byte)(code << 4);
            }
        }
    }

    /// <summary>The absmax of every block of row <paramref name="p"/> into <paramref name="scales"/>.</summary>
    private void Scales(byte* p, int nb, float* scales)
    {
        if (!DoubleQuant)
        {
            Buffer.MemoryCopy(p, scales, nb * 4L, nb * 4L);
            return;
        }
        float offset = Unsafe.ReadUnaligned<float>(p);
        int ndq = (nb + DqBlock - 1) / DqBlock;
        sbyte* codes = (sbyte*)(p + 4 + 4 * ndq);
        for (int b = 0; b < nb; b++) scales[b] = offset + Unsafe.ReadUnaligned<float>(p + 4 + 4 * (b / DqBlock)) * codes[b];
    }

    /// <inheritdoc />
    public override void DequantizeRow(WeightMatrix w, int row, Span<float> destination)
    {
        CheckDequantize(w, row, destination.Length);
        int cols = w.Cols, nb = Blocks(cols);
        byte* p = w.Data + row * w.RowBytes;
        var scales = new float[nb];
        fixed (float* ps = scales) Scales(p, nb, ps);
        byte* codes = p + ScaleBytes(cols);
        for (int j = 0; j < cols; j++)
        {
            int b = j / BlockSize, k = j % BlockSize;
            byte c = codes[b * 32 + (k & 31)];
            destination[j] = scales[b] * _lut[k < 32 ? c & 15 : c >> 4];
        }
    }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal override void DotRows(WeightMatrix w, int rowStart, int rowEnd, ReadOnlySpan<byte> activations,
        int activationStride, int batch, Span<float> y, int yStride, SimdPath path)
    {
        RtnKernels.Check(path);
        if (!CheckDot(w, rowStart, rowEnd, activations.Length, activationStride, batch, y.Length, yStride)) return;
        int cols = w.Cols, nb = Blocks(cols), scaleBytes = ScaleBytes(cols);
        float* scales = (float*)RtnKernels.Scratch(nb * 4 + 4);
        fixed (byte* act = activations)
        fixed (float* py = y)
        {
            for (int r = rowStart; r < rowEnd; r++)
            {
                byte* p = w.Data + r * w.RowBytes;
                Scales(p, nb, scales);
                byte* codes = p + scaleBytes;
                for (int b = 0; b < batch; b++)
                {
                    float* x = (float*)(act + (long)b * activationStride);
                    py[(long)b * yStride + r] = RtnKernels.LutDotRow(codes, x, scales, nb, _lutPtr, path);
                }
            }
        }
    }
}
