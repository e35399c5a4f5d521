using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using QuantServe.Engine.Tensors;
using static QuantServe.Engine.Quantization.Formats.KQuantMath;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>ggml's block_q2_K (84 bytes): 16 groups of 16 two-bit weights with 4-bit scales and mins.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public unsafe struct BlockQ2K
{
    /// <summary>Per group: scale in the low nibble, min in the high nibble.</summary>
    public fixed byte Scales[16];

    /// <summary>2-bit quants: byte 32h+l holds elements 128h+32j+l at bits 2j.</summary>
    public fixed byte Qs[64];

    /// <summary>FP16 super-block scale of the group scales.</summary>
    public ushort D;

    /// <summary>FP16 super-block scale of the group mins.</summary>
    public ushort DMin;
}

/// <summary>Q2_K: w = d·sc_g·q − dmin·m_g for group g of 16 weights, q in 0..3, sc_g/m_g 4-bit. 2.625 bits per weight.</summary>
public sealed unsafe partial class Q2KFormat : KQuantFormat
{
    /// <summary>The shared instance.</summary>
    public static Q2KFormat Instance { get; } = new();

    /// <inheritdoc />
    public override string Name => "Q2_K";

    /// <inheritdoc />
    public override GgmlType? Ggml => GgmlType.Q2_K;

    /// <inheritdoc />
    public override int BlockBytes => 84;

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
                var y = (BlockQ2K*)(pd + i * BlockBytes);
                if (importance.IsEmpty) QuantizeBlockRef(px + i * BlockElements, y);
                else QuantizeBlockWeighted(px + i * BlockElements, pw + i * BlockElements, y);
            }
        }
    }

    /// <summary>ggml quantize_row_q2_K_ref for one block.</summary>
    private static void QuantizeBlockRef(float* x, BlockQ2K* y)
    {
        byte* L = stackalloc byte[256];
        byte* laux = stackalloc byte[16];
        float* weights = stackalloc float[16];
        float* mins = stackalloc float[16];
        float* scales = stackalloc float[16];
        const float q4scale = 15f;
        float maxScale = 0, maxMin = 0;
        for (int j = 0; j < 16; ++j)
        {
            for (int l = 0; l < 16; ++l) weights[l] = MathF.Abs(x[16 * j + l]);
            scales[j] = KQuantSearch.MakeQkx2Quants(16, 3, x + 16 * j, weights, L + 16 * j, out mins[j], laux, -0.5f, 0.1f, 15, true);
            if (scales[j] > maxScale) maxScale = scales[j];
            if (mins[j] > maxMin) maxMin = mins[j];
        }
        if (maxScale > 0)
        {
            float iscale = q4scale / maxScale;
            for (int j = 0; j < 16; ++j) y->Scales[j] = (byte)NearestInt(iscale * scales[j]);
            y->D = Fp32ToFp16(maxScale / q4scale);
        }
        else
        {
            for (int j = 0; j < 16; ++j) y->Scales[j] = 0;
            y->D = Fp32ToFp16(0f);
        }
        if (maxMin > 0)
        {
            float iscale = q4scale / maxMin;
            for (int j = 0; j < 16; ++j) y->Scales[j] |= (byte)(NearestInt(iscale * mins[j]) << 4);
            y->DMin = Fp32ToFp16(maxMin / q4scale);
        }
        else
        {
            y->DMin = Fp32ToFp16(0f);
        }
        Finish(x, y, L);
    }

    /// <summary>ggml quantize_row_q2_K_impl (imatrix path) for one block.</summary>
    private static void QuantizeBlockWeighted(float* x, float* qw, BlockQ2K* y)
    {
        byte* L = stackalloc byte[256];
        byte* laux = stackalloc byte[16];
        float* weight = stackalloc float[16];
        float* mins = stackalloc float[16];
        float* scales = stackalloc float[16];
        float* sw = stackalloc float[16];
        byte* ls = stackalloc byte[16];
        byte* lm = stackalloc byte[16];
        float sumx2 = 0;
        for (int j = 0; j < 256; ++j) sumx2 += x[j] * x[j];
        float sigma2 = sumx2 / 256;
        for (int j = 0; j < 16; ++j)
        {
            for (int l = 0; l < 16; ++l) weight[l] = qw[16 * j + l] * MathF.Sqrt(sigma2 + x[16 * j + l] * x[16 * j + l]);
            float s = 0;
            for (int l = 0; l < 16; ++l) s += weight[l];
            sw[j] = s;
            scales[j] = KQuantSearch.MakeQkx3Quants(16, 3, x + 16 * j, weight, L + 16 * j, out mins[j], laux, -0.9f, 0.05f, 36, false);
        }
        float dm = KQuantSearch.MakeQpQuants(16, 15, scales, ls, sw);
        float mm = KQuantSearch.MakeQpQuants(16, 15, mins, lm, sw);
        y->D = Fp32ToFp16(dm);
        y->DMin = Fp32ToFp16(mm);
        for (int j = 0; j < 16; ++j) y->Scales[j] = (byte)(ls[j] | (lm[j] << 4));
        Finish(x, y, L);
    }

    /// <summary>Requantizes with the stored scales and packs four 2-bit quants per byte.</summary>
    private static void Finish(float* x, BlockQ2K* y, byte* L)
    {
        for (int j = 0; j < 16; ++j)
        {
            float d = Fp16ToFp32(y->D) * (y->Scales[j] & 0xF);
            if (d == 0) continue;
            float dm = Fp16ToFp32(y->DMin) * (y->Scales[j] >> 4);
            for (int ii = 0; ii < 16; ++ii)
            {
                int l = NearestInt((x[16 * j + ii] + dm) / d);
                L[16 * j + ii] = (byte)Math.Max(0, Math.Min(3, l));
            }
        }
        for (int j = 0; j < 256; j += 128)
        {
            for (int l = 0; l < 32; ++l)
                y->Qs[j / 4 + l] = (byte)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
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
                var b = (BlockQ2K*)(ps + i * BlockBytes);
                float d = Fp16ToFp32(b->D), min = Fp16ToFp32(b->DMin);
                byte* q = b->Qs;
                int s = 0;
                for (int n = 0; n < 256; n += 128)
                {
                    int shift = 0;
                    for (int j = 0; j < 4; ++j)
                    {
                        int sc = b->Scales[s++];
                        float dl = d * (sc & 0xF), ml = min * (sc >> 4);
                        for (int l = 0; l < 16; ++l) *y++ = dl * ((q[l] >> shift) & 3) - ml;
                        sc = b->Scales[s++];
                        dl = d * (sc & 0xF); ml = min * (sc >> 4);
                        for (int l = 0; l < 16; ++l) *y++ = dl * ((q[l + 16] >> shift) & 3) - ml;
                        shift += 2;
                    }
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
                var x = (BlockQ2K*)(row + i * 84);
                for (int b = 0; b < count; b++)
                    acc[b] += DotBlockScalar(x, (BlockQ8K*)(activations + (long)b * activationStride + i * Q8KActivations.BlockBytes));
            }
            return;
        }
        byte* q = stackalloc byte[256];
        short* pairs = stackalloc short[128];
        int* sc16 = stackalloc int[16];
        int* m16 = stackalloc int[16];
        for (int i = 0; i < nb; i++)
        {
            var x = (BlockQ2K*)(row + i * 84);
            UnpackVector(x, q);
            for (int g = 0; g < 16; g++)
            {
                sc16[g] = x->Scales[g] & 0xF;
                m16[g] = x->Scales[g] >> 4;
            }
            KQuantDot.ExpandScales16(sc16, pairs);
            float xd = Fp16ToFp32(x->D), xmin = Fp16ToFp32(x->DMin);
            for (int b = 0; b < count; b++)
            {
                var a = (BlockQ8K*)(activations + (long)b * activationStride + i * Q8KActivations.BlockBytes);
                int sumi = KQuantDot.ScaledDot(q, a->Qs, pairs, path);
                int summ = KQuantDot.GroupSum(m16, a->BSums);
                float d = xd * a->D, dmin = xmin * a->D;
                acc[b] += d * sumi - dmin * summ;
            }
        }
    }

    private static float DotBlockScalar(BlockQ2K* x, BlockQ8K* a)
    {
        int sumi = 0, summ = 0;
        for (int e = 0; e < 256; e++)
        {
            int half = e / 128, j = e % 128 / 32, l = e % 32;
            sumi += (x->Scales[e / 16] & 0xF) * ((x->Qs[32 * half + l] >> (2 * j)) & 3) * a->Qs[e];
        }
        for (int g = 0; g < 16; g++) summ += (x->Scales[g] >> 4) * a->BSums[g];
        float d = Fp16ToFp32(x->D) * a->D, dmin = Fp16ToFp32(x->DMin) * a->D;
        return d * sumi - dmin * summ;
    }

    private static void UnpackVector(BlockQ2K* x, byte* q)
    {
        var three = Vector128.Create((byte)3);
        for (int half = 0; half < 2; half++)
        {
            for (int h = 0; h < 32; h += 16)
            {
                var v = Vector128.Load(x->Qs + 32 * half + h);
                for (int j = 0; j < 4; j++) (Vector128.ShiftRightLogical(v, 2 * j) & three).Store(q + 128 * half + 32 * j + h);
            }
        }
    }
}
