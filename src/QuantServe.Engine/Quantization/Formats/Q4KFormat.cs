using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using QuantServe.Engine.Tensors;
using static QuantServe.Engine.Quantization.Formats.KQuantMath;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>ggml's block_q4_K (144 bytes): 8 sub-blocks of 32 four-bit weights with 6-bit scales and mins.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public unsafe struct BlockQ4K
{
    /// <summary>FP16 super-block scale of the sub-block scales.</summary>
    public ushort D;

    /// <summary>FP16 super-block scale of the sub-block mins.</summary>
    public ushort DMin;

    /// <summary>8 scales and 8 mins, 6 bits each, packed as in ggml's get_scale_min_k4.</summary>
    public fixed byte Scales[12];

    /// <summary>Nibbles: byte 32c+l holds element 64c+l (low) and 64c+32+l (high).</summary>
    public fixed byte Qs[128];
}

/// <summary>
/// Q4_K: w = d·sc_j·q − dmin·m_j for sub-block j (32 weights), q in 0..15, sc_j/m_j 6-bit, d/dmin FP16. 4.5 bits per weight.
/// </summary>
public sealed unsafe partial class Q4KFormat : KQuantFormat
{
    /// <summary>The shared instance.</summary>
    public static Q4KFormat Instance { get; } = new();

    /// <inheritdoc />
    public override string Name => "Q4_K";

    /// <inheritdoc />
    public override GgmlType? Ggml => GgmlType.Q4_K;

    /// <inheritdoc />
    public override int BlockBytes => 144;

    /// <inheritdoc />
    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> destination, ReadOnlySpan<float> importance = default)
    {
        CheckQuantizeArgs(Name, BlockBytes, x, destination, importance);
        int nb = x.Length / BlockElements;
        fixed (float* px = x)
        fixed (float* pw = importance)
        fixed (byte* pd = destination)
        {
            for (int i = 0; i < nb; i++)
            {
                var y = (BlockQ4K*)(pd + i * BlockBytes);
                if (importance.IsEmpty) QuantizeBlockRef(px + i * BlockElements, y);
                else QuantizeBlockWeighted(px + i * BlockElements, pw + i * BlockElements, y);
            }
        }
    }

    /// <summary>ggml quantize_row_q4_K_ref for one block.</summary>
    private static void QuantizeBlockRef(float* x, BlockQ4K* y)
    {
        byte* L = stackalloc byte[256];
        byte* laux = stackalloc byte[32];
        float* weights = stackalloc float[32];
        float* mins = stackalloc float[8];
        float* scales = stackalloc float[8];
        float maxScale = 0, maxMin = 0;
        for (int j = 0; j < 8; ++j)
        {
            float sumX2 = 0;
            for (int l = 0; l < 32; ++l) sumX2 += x[32 * j + l] * x[32 * j + l];
            float avX = MathF.Sqrt(sumX2 / 32);
            for (int l = 0; l < 32; ++l) weights[l] = avX + MathF.Abs(x[32 * j + l]);
            scales[j] = KQuantSearch.MakeQkx2Quants(32, 15, x + 32 * j, weights, L + 32 * j, out mins[j], laux, -1f, 0.1f, 20, false);
            if (scales[j] > maxScale) maxScale = scales[j];
            if (mins[j] > maxMin) maxMin = mins[j];
        }
        float invScale = maxScale > 0 ? 63f / maxScale : 0f;
        float invMin = maxMin > 0 ? 63f / maxMin : 0f;
        byte* ls = stackalloc byte[8];
        byte* lm = stackalloc byte[8];
        for (int j = 0; j < 8; ++j)
        {
            ls[j] = Math.Min((byte)63, (byte)NearestInt(invScale * scales[j]));
            lm[j] = Math.Min((byte)63, (byte)NearestInt(invMin * mins[j]));
        }
        PackScales(y->Scales, ls, lm);
        y->D = Fp32ToFp16(maxScale / 63f);
        y->DMin = Fp32ToFp16(maxMin / 63f);
        Requantize(x, y, L, 15);
        PackNibbles(y->Qs, L);
    }

    /// <summary>ggml quantize_row_q4_K_impl (imatrix path) for one block.</summary>
    private static void QuantizeBlockWeighted(float* x, float* qw, BlockQ4K* y)
    {
        byte* L = stackalloc byte[256];
        byte* laux = stackalloc byte[32];
        float* weights = stackalloc float[32];
        float* sw = stackalloc float[8];
        float* mins = stackalloc float[8];
        float* scales = stackalloc float[8];
        byte* ls = stackalloc byte[8];
        byte* lm = stackalloc byte[8];
        float sumX2 = 0;
        for (int l = 0; l < 256; ++l) sumX2 += x[l] * x[l];
        float sigma2 = 2 * sumX2 / 256;
        for (int j = 0; j < 8; ++j)
        {
            for (int l = 0; l < 32; ++l) weights[l] = qw[32 * j + l] * MathF.Sqrt(sigma2 + x[32 * j + l] * x[32 * j + l]);
            float sumw = 0;
            for (int l = 0; l < 32; ++l) sumw += weights[l];
            sw[j] = sumw;
            scales[j] = KQuantSearch.MakeQkx3Quants(32, 15, x + 32 * j, weights, L + 32 * j, out mins[j], laux, -0.9f, 0.05f, 36, false);
        }
        float dBlock = KQuantSearch.MakeQpQuants(8, 63, scales, ls, sw);
        float mBlock = KQuantSearch.MakeQpQuants(8, 63, mins, lm, sw);
        PackScales(y->Scales, ls, lm);
        y->D = Fp32ToFp16(dBlock);
        y->DMin = Fp32ToFp16(mBlock);
        Requantize(x, y, L, 15);
        PackNibbles(y->Qs, L);
    }

    /// <summary>Packs 8 six-bit scales and mins the way get_scale_min_k4 reads them (shared with Q5_K).</summary>
    internal static void PackScales(byte* scales, byte* ls, byte* lm)
    {
        for (int j = 0; j < 8; ++j)
        {
            if (j < 4)
            {
                scales[j] = ls[j];
                scales[j + 4] = lm[j];
            }
            else
            {
                scales[j + 4] = (byte)((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
                scales[j - 4] |= (byte)((ls[j] >> 4) << 6);
                scales[j] |= (byte)((lm[j] >> 4) << 6);
            }
        }
    }

    /// <summary>Re-derives the levels from the stored FP16 scales (ggml's final pass; shared with Q5_K).</summary>
    internal static void Requantize(float* x, byte* scales, ushort dBits, ushort dminBits, byte* L, int nmax)
    {
        for (int j = 0; j < 8; ++j)
        {
            ScaleMinK4(j, scales, out byte sc, out byte m);
            float d = Fp16ToFp32(dBits) * sc;
            if (d == 0) continue;
            float dm = Fp16ToFp32(dminBits) * m;
            for (int ii = 0; ii < 32; ++ii)
            {
                int l = NearestInt((x[32 * j + ii] + dm) / d);
                L[32 * j + ii] = (byte)Math.Max(0, Math.Min(nmax, l));
            }
        }
    }

    private static void Requantize(float* x, BlockQ4K* y, byte* L, int nmax) => Requantize(x, y->Scales, y->D, y->DMin, L, nmax);

    private static void PackNibbles(byte* q, byte* L)
    {
        for (int j = 0; j < 256; j += 64)
        {
            for (int l = 0; l < 32; ++l) q[l] = (byte)(L[j + l] | (L[j + l + 32] << 4));
            q += 32;
        }
    }

    /// <inheritdoc />
    public override void DequantizeRow(ReadOnlySpan<byte> source, Span<float> destination)
    {
        CheckDequantizeArgs(Name, BlockBytes, source, destination);
        int nb = destination.Length / BlockElements;
        fixed (byte* ps = source)
        fixed (float* pd = destination)
        {
            float* y = pd;
            for (int i = 0; i < nb; i++)
            {
                var b = (BlockQ4K*)(ps + i * BlockBytes);
                byte* q = b->Qs;
                float d = Fp16ToFp32(b->D), min = Fp16ToFp32(b->DMin);
                for (int j = 0, js = 0; j < 256; j += 64, js += 2)
                {
                    ScaleMinK4(js, b->Scales, out byte sc, out byte m);
                    float d1 = d * sc, m1 = min * m;
                    ScaleMinK4(js + 1, b->Scales, out sc, out m);
                    float d2 = d * sc, m2 = min * m;
                    for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
                    for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
                    q += 32;
                }
            }
        }
    }


    [SkipLocalsInit]
    private protected override void DotRow(byte* row, int nb, byte* activations, int activationStride, int count, float* acc, KQuantKernelPath path)
    {
        if (path == KQuantKernelPath.Scalar)
        {
            for (int i = 0; i < nb; i++)
            {
                var x = (BlockQ4K*)(row + i * 144);
                for (int b = 0; b < count; b++)
                    acc[b] += DotBlockScalar(x, (BlockQ8K*)(activations + (long)b * activationStride + i * Q8KActivations.BlockBytes));
            }
            return;
        }
        byte* q = stackalloc byte[256];
        short* pairs = stackalloc short[128];
        int* sc16 = stackalloc int[16];
        int* m8 = stackalloc int[8];
        for (int i = 0; i < nb; i++)
        {
            var x = (BlockQ4K*)(row + i * 144);
            UnpackVector(x, q);
            for (int j = 0; j < 8; j++)
            {
                ScaleMinK4(j, x->Scales, out byte sc, out byte m);
                sc16[2 * j] = sc16[2 * j + 1] = sc;
                m8[j] = m;
            }
            KQuantDot.ExpandScales16(sc16, pairs);
            float xd = Fp16ToFp32(x->D), xmin = Fp16ToFp32(x->DMin);
            for (int b = 0; b < count; b++)
            {
                var a = (BlockQ8K*)(activations + (long)b * activationStride + i * Q8KActivations.BlockBytes);
                int sumi = KQuantDot.ScaledDot(q, a->Qs, pairs, path);
                int summ = 0;
                for (int j = 0; j < 8; j++) summ += m8[j] * (a->BSums[2 * j] + a->BSums[2 * j + 1]);
                float d = xd * a->D, dmin = xmin * a->D;
                acc[b] += d * sumi - dmin * summ;
            }
        }
    }

    private static float DotBlockScalar(BlockQ4K* x, BlockQ8K* a)
    {
        int sumi = 0, summ = 0;
        byte* q = x->Qs;
        for (int j = 0; j < 8; j++)
        {
            ScaleMinK4(j, x->Scales, out byte sc, out byte m);
            int chunk = j / 2, shift = (j & 1) * 4, s = 0;
            for (int l = 0; l < 32; l++) s += ((q[32 * chunk + l] >> shift) & 0xF) * a->Qs[32 * j + l];
            sumi += sc * s;
            summ += m * (a->BSums[2 * j] + a->BSums[2 * j + 1]);
        }
        float d = Fp16ToFp32(x->D) * a->D, dmin = Fp16ToFp32(x->DMin) * a->D;
        return d * sumi - dmin * summ;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void UnpackVector(BlockQ4K* x, byte* q)
    {
        var mask = Vector128.Create((byte)0x0F);
        byte* qs = x->Qs;
        for (int c = 0; c < 4; c++)
        {
            for (int h = 0; h < 32; h += 16)
            {
                var v = Vector128.Load(qs + 32 * c + h);
                (v & mask).Store(q + 64 * c + h);
                (Vector128.ShiftRightLogical(v, 4) & mask).Store(q + 64 * c + 32 + h);
            }
        }
    }
}
