using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using QuantServe.Engine.Tensors;
using static QuantServe.Engine.Quantization.Formats.KQuantMath;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>ggml's block_q5_K (176 bytes): Q4_K's layout plus one high bit per weight.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public unsafe struct BlockQ5K
{
    /// <summary>FP16 super-block scale of the sub-block scales.</summary>
    public ushort D;

    /// <summary>FP16 super-block scale of the sub-block mins.</summary>
    public ushort DMin;

    /// <summary>8 scales and 8 mins, 6 bits each (same packing as Q4_K).</summary>
    public fixed byte Scales[12];

    /// <summary>High bits: bit 2c of byte l belongs to element 64c+l, bit 2c+1 to element 64c+32+l.</summary>
    public fixed byte Qh[32];

    /// <summary>Low nibbles, arranged as in Q4_K.</summary>
    public fixed byte Qs[128];
}

/// <summary>Q5_K: w = d·sc_j·q − dmin·m_j for sub-block j (32 weights), q in 0..31. 5.5 bits per weight.</summary>
public sealed unsafe partial class Q5KFormat : KQuantFormat
{
    /// <summary>The shared instance.</summary>
    public static Q5KFormat Instance { get; } = new();

    /// <inheritdoc />
    public override string Name => "Q5_K";

    /// <inheritdoc />
    public override GgmlType? Ggml => GgmlType.Q5_K;

    /// <inheritdoc />
    public override int BlockBytes => 176;

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
                QuantizeBlock(px + i * BlockElements, importance.IsEmpty ? null : pw + i * BlockElements, (BlockQ5K*)(pd + i * BlockBytes));
        }
    }

    /// <summary>ggml quantize_row_q5_K_ref (qw null) / quantize_row_q5_K_impl (qw = importance) for one block.</summary>
    private static void QuantizeBlock(float* x, float* qw, BlockQ5K* y)
    {
        byte* L = stackalloc byte[256];
        byte* laux = stackalloc byte[32];
        float* weights = stackalloc float[32];
        float* mins = stackalloc float[8];
        float* scales = stackalloc float[8];
        byte* ls = stackalloc byte[8];
        byte* lm = stackalloc byte[8];
        if (qw == null)
        {
            float maxScale = 0, maxMin = 0;
            for (int j = 0; j < 8; ++j)
            {
                float sumX2 = 0;
                for (int l = 0; l < 32; ++l) sumX2 += x[32 * j + l] * x[32 * j + l];
                float avX = MathF.Sqrt(sumX2 / 32);
                for (int l = 0; l < 32; ++l) weights[l] = avX + MathF.Abs(x[32 * j + l]);
                scales[j] = KQuantSearch.MakeQkx2Quants(32, 31, x + 32 * j, weights, L + 32 * j, out mins[j], laux, -0.5f, 0.1f, 15, false);
                if (scales[j] > maxScale) maxScale = scales[j];
                if (mins[j] > maxMin) maxMin = mins[j];
            }
            float invScale = maxScale > 0 ? 63f / maxScale : 0f;
            float invMin = maxMin > 0 ? 63f / maxMin : 0f;
            for (int j = 0; j < 8; ++j)
            {
                ls[j] = Math.Min((byte)63, (byte)NearestInt(invScale * scales[j]));
                lm[j] = Math.Min((byte)63, (byte)NearestInt(invMin * mins[j]));
            }
            Q4KFormat.PackScales(y->Scales, ls, lm);
            y->D = Fp32ToFp16(maxScale / 63f);
            y->DMin = Fp32ToFp16(maxMin / 63f);
        }
        else
        {
            float* sw = stackalloc float[8];
            float sumX2 = 0;
            for (int l = 0; l < 256; ++l) sumX2 += x[l] * x[l];
            float sigma2 = 2 * sumX2 / 256;
            for (int j = 0; j < 8; ++j)
            {
                for (int l = 0; l < 32; ++l) weights[l] = qw[32 * j + l] * MathF.Sqrt(sigma2 + x[32 * j + l] * x[32 * j + l]);
                float sumw = 0;
                for (int l = 0; l < 32; ++l) sumw += weights[l];
                sw[j] = sumw;
                scales[j] = KQuantSearch.MakeQkx3Quants(32, 31, x + 32 * j, weights, L + 32 * j, out mins[j], laux, -0.9f, 0.05f, 36, false);
            }
            float dBlock = KQuantSearch.MakeQpQuants(8, 63, scales, ls, sw);
            float mBlock = KQuantSearch.MakeQpQuants(8, 63, mins, lm, sw);
            for (int j = 0; j < 8; ++j) { ls[j] = Math.Min((byte)63, ls[j]); lm[j] = Math.Min((byte)63, lm[j]); }
            Q4KFormat.PackScales(y->Scales, ls, lm);
            y->D = Fp32ToFp16(dBlock);
            y->DMin = Fp32ToFp16(mBlock);
        }
        Q4KFormat.Requantize(x, y->Scales, y->D, y->DMin, L, 31);

        byte* qh = y->Qh;
        byte* ql = y->Qs;
        for (int j = 0; j < 32; j++) qh[j] = 0;
        byte m1 = 1, m2 = 2;
        for (int n = 0; n < 256; n += 64)
        {
            for (int j = 0; j < 32; ++j)
            {
                int l1 = L[n + j];
                if (l1 > 15) { l1 -= 16; qh[j] |= m1; }
                int l2 = L[n + j + 32];
                if (l2 > 15) { l2 -= 16; qh[j] |= m2; }
                ql[j] = (byte)(l1 | (l2 << 4));
            }
            m1 <<= 2; m2 <<= 2;
            ql += 32;
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
                var b = (BlockQ5K*)(ps + i * BlockBytes);
                byte* ql = b->Qs;
                byte* qh = b->Qh;
                float d = Fp16ToFp32(b->D), min = Fp16ToFp32(b->DMin);
                int u1 = 1, u2 = 2;
                for (int j = 0, js = 0; j < 256; j += 64, js += 2)
                {
                    ScaleMinK4(js, b->Scales, out byte sc, out byte m);
                    float d1 = d * sc, m1 = min * m;
                    ScaleMinK4(js + 1, b->Scales, out sc, out m);
                    float d2 = d * sc, m2 = min * m;
                    for (int l = 0; l < 32; ++l) *y++ = d1 * ((ql[l] & 0xF) + ((qh[l] & u1) != 0 ? 16 : 0)) - m1;
                    for (int l = 0; l < 32; ++l) *y++ = d2 * ((ql[l] >> 4) + ((qh[l] & u2) != 0 ? 16 : 0)) - m2;
                    ql += 32;
                    u1 <<= 2; u2 <<= 2;
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
                var x = (BlockQ5K*)(row + i * 176);
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
            var x = (BlockQ5K*)(row + i * 176);
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

    private static float DotBlockScalar(BlockQ5K* x, BlockQ8K* a)
    {
        int sumi = 0, summ = 0;
        for (int j = 0; j < 8; j++)
        {
            ScaleMinK4(j, x->Scales, out byte sc, out byte m);
            int chunk = j / 2, shift = (j & 1) * 4, s = 0;
            for (int l = 0; l < 32; l++)
            {
                int v = ((x->Qs[32 * chunk + l] >> shift) & 0xF) | (((x->Qh[l] >> j) & 1) << 4);
                s += v * a->Qs[32 * j + l];
            }
            sumi += sc * s;
            summ += m * (a->BSums[2 * j] + a->BSums[2 * j + 1]);
        }
        float d = Fp16ToFp32(x->D) * a->D, dmin = Fp16ToFp32(x->DMin) * a->D;
        return d * sumi - dmin * summ;
    }

    private static void UnpackVector(BlockQ5K* x, byte* q)
    {
        var mask = Vector128.Create((byte)0x0F);
        var one = Vector128.Create((byte)1);
        byte* qs = x->Qs;
        for (int c = 0; c < 4; c++)
        {
            for (int h = 0; h < 32; h += 16)
            {
                var v = Vector128.Load(qs + 32 * c + h);
                var hb = Vector128.Load(x->Qh + h);
                ((v & mask) | Vector128.ShiftLeft(Vector128.ShiftRightLogical(hb, 2 * c) & one, 4)).Store(q + 64 * c + h);
                (Vector128.ShiftRightLogical(v, 4) | Vector128.ShiftLeft(Vector128.ShiftRightLogical(hb, 2 * c + 1) & one, 4)).Store(q + 64 * c + 32 + h);
            }
        }
    }
}
