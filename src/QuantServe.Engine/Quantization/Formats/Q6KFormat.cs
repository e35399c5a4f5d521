using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using QuantServe.Engine.Tensors;
using static QuantServe.Engine.Quantization.Formats.KQuantMath;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>ggml's block_q6_K (210 bytes): 16 groups of 16 six-bit weights with int8 scales.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public unsafe struct BlockQ6K
{
    /// <summary>Low 4 bits of the quants.</summary>
    public fixed byte Ql[128];

    /// <summary>High 2 bits of the quants.</summary>
    public fixed byte Qh[64];

    /// <summary>Signed 8-bit group scales.</summary>
    public fixed sbyte Scales[16];

    /// <summary>FP16 super-block scale.</summary>
    public ushort D;
}

/// <summary>Q6_K: w = d·sc_g·(q − 32) for group g of 16 weights, q in 0..63, sc_g int8, d FP16. 6.5625 bits per weight.</summary>
public sealed unsafe partial class Q6KFormat : KQuantFormat
{
    /// <summary>The shared instance.</summary>
    public static Q6KFormat Instance { get; } = new();

    /// <inheritdoc />
    public override string Name => "Q6_K";

    /// <inheritdoc />
    public override GgmlType? Ggml => GgmlType.Q6_K;

    /// <inheritdoc />
    public override int BlockBytes => 210;

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
                QuantizeBlock(px + i * BlockElements, importance.IsEmpty ? null : pw + i * BlockElements, (BlockQ6K*)(pd + i * BlockBytes));
        }
    }

    /// <summary>ggml quantize_row_q6_K_ref (qw null) / quantize_row_q6_K_impl (qw = importance) for one block.</summary>
    private static void QuantizeBlock(float* x, float* qw, BlockQ6K* y)
    {
        sbyte* L = stackalloc sbyte[256];
        float* scales = stackalloc float[16];
        float maxScale = 0, maxAbsScale = 0;
        for (int ib = 0; ib < 16; ++ib)
        {
            float scale = KQuantSearch.MakeQxQuants(16, 32, x + 16 * ib, L + 16 * ib, 1, qw == null ? null : qw + 16 * ib);
            scales[ib] = scale;
            float abs = MathF.Abs(scale);
            if (abs > maxAbsScale) { maxAbsScale = abs; maxScale = scale; }
        }
        if (maxAbsScale < GroupMaxEps)
        {
            Unsafe.InitBlockUnaligned(y, 0, 210);
            return;
        }
        float iscale = -128f / maxScale;
        y->D = Fp32ToFp16(1 / iscale);
        for (int ib = 0; ib < 16; ++ib) y->Scales[ib] = (sbyte)Math.Min(127, NearestInt(iscale * scales[ib]));
        for (int j = 0; j < 16; ++j)
        {
            float d = Fp16ToFp32(y->D) * y->Scales[j];
            if (d == 0) continue;
            for (int ii = 0; ii < 16; ++ii)
            {
                int l = NearestInt(x[16 * j + ii] / d);
                L[16 * j + ii] = (sbyte)(Math.Max(-32, Math.Min(31, l)) + 32);
            }
        }
        byte* ql = y->Ql;
        byte* qh = y->Qh;
        for (int j = 0; j < 256; j += 128)
        {
            for (int l = 0; l < 32; ++l)
            {
                int q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF, q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
                ql[l] = (byte)(q1 | (q3 << 4));
                ql[l + 32] = (byte)(q2 | (q4 << 4));
                qh[l] = (byte)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
            }
            ql += 64;
            qh += 32;
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
            for (int i = 0; i < nb; i++)
            {
                var b = (BlockQ6K*)(ps + i * BlockBytes);
                float d = Fp16ToFp32(b->D);
                byte* ql = b->Ql;
                byte* qh = b->Qh;
                sbyte* sc = b->Scales;
                float* y = pd + i * 256;
                for (int n = 0; n < 256; n += 128)
                {
                    for (int l = 0; l < 32; ++l)
                    {
                        int s = l / 16;
                        int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                        int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                        int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                        int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                        y[l] = d * sc[s] * q1;
                        y[l + 32] = d * sc[s + 2] * q2;
                        y[l + 64] = d * sc[s + 4] * q3;
                        y[l + 96] = d * sc[s + 6] * q4;
                    }
                    y += 128;
                    ql += 64;
                    qh += 32;
                    sc += 8;
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
                var x = (BlockQ6K*)(row + i * 210);
                for (int b = 0; b < count; b++)
                    acc[b] += DotBlockScalar(x, (BlockQ8K*)(activations + (long)b * activationStride + i * Q8KActivations.BlockBytes));
            }
            return;
        }
        byte* q = stackalloc byte[256];
        short* pairs = stackalloc short[128];
        int* sc16 = stackalloc int[16];
        int* bias16 = stackalloc int[16];
        for (int i = 0; i < nb; i++)
        {
            var x = (BlockQ6K*)(row + i * 210);
            UnpackVector(x, q);
            for (int g = 0; g < 16; g++)
            {
                sc16[g] = x->Scales[g];
                bias16[g] = 32 * x->Scales[g];
            }
            KQuantDot.ExpandScales16(sc16, pairs);
            float xd = Fp16ToFp32(x->D);
            for (int b = 0; b < count; b++)
            {
                var a = (BlockQ8K*)(activations + (long)b * activationStride + i * Q8KActivations.BlockBytes);
                int sumi = KQuantDot.ScaledDot(q, a->Qs, pairs, path) - KQuantDot.GroupSum(bias16, a->BSums);
                acc[b] += xd * a->D * sumi;
            }
        }
    }

    private static float DotBlockScalar(BlockQ6K* x, BlockQ8K* a)
    {
        int sumi = 0;
        byte* ql = x->Ql;
        byte* qh = x->Qh;
        for (int half = 0; half < 2; half++)
        {
            for (int l = 0; l < 32; l++)
            {
                int e = 128 * half + l;
                int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                sumi += x->Scales[e / 16] * q1 * a->Qs[e]
                      + x->Scales[(e + 32) / 16] * q2 * a->Qs[e + 32]
                      + x->Scales[(e + 64) / 16] * q3 * a->Qs[e + 64]
                      + x->Scales[(e + 96) / 16] * q4 * a->Qs[e + 96];
            }
            ql += 64;
            qh += 32;
        }
        return Fp16ToFp32(x->D) * a->D * sumi;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void UnpackVector(BlockQ6K* x, byte* q)
    {
        var m4 = Vector128.Create((byte)0x0F);
        var m2 = Vector128.Create((byte)0x03);
        for (int half = 0; half < 2; half++)
        {
            byte* ql = x->Ql + 64 * half;
            byte* qh = x->Qh + 32 * half;
            byte* o = q + 128 * half;
            for (int h = 0; h < 32; h += 16)
            {
                var l0 = Vector128.Load(ql + h);
                var l1 = Vector128.Load(ql + 32 + h);
                var hb = Vector128.Load(qh + h);
                ((l0 & m4) | Vector128.ShiftLeft(hb & m2, 4)).Store(o + h);
                ((l1 & m4) | Vector128.ShiftLeft(Vector128.ShiftRightLogical(hb, 2) & m2, 4)).Store(o + 32 + h);
                (Vector128.ShiftRightLogical(l0, 4) | Vector128.ShiftLeft(Vector128.ShiftRightLogical(hb, 4) & m2, 4)).Store(o + 64 + h);
                (Vector128.ShiftRightLogical(l1, 4) | Vector128.ShiftLeft(Vector128.ShiftRightLogical(hb, 6), 4)).Store(o + 96 + h);
            }
        }
    }
}
