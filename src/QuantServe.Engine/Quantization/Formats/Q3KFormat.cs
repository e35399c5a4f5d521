using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using QuantServe.Engine.Tensors;
using static QuantServe.Engine.Quantization.Formats.KQuantMath;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>ggml's block_q3_K (110 bytes): 16 groups of 16 three-bit weights with 6-bit signed scales.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public unsafe struct BlockQ3K
{
    /// <summary>High bit of each quant: bit k of byte l belongs to element 32k + l.</summary>
    public fixed byte HMask[32];

    /// <summary>Low 2 bits: byte 32h+l holds elements 128h+32j+l at bits 2j.</summary>
    public fixed byte Qs[64];

    /// <summary>16 scales, 6 bits each, offset by 32.</summary>
    public fixed byte Scales[12];

    /// <summary>FP16 super-block scale.</summary>
    public ushort D;
}

/// <summary>Q3_K: w = d·(sc_g − 32)·(q − 4) for group g of 16 weights, q in 0..7. 3.4375 bits per weight.</summary>
public sealed unsafe partial class Q3KFormat : KQuantFormat
{
    /// <summary>The shared instance.</summary>
    public static Q3KFormat Instance { get; } = new();

    /// <inheritdoc />
    public override string Name => "Q3_K";

    /// <inheritdoc />
    public override GgmlType? Ggml => GgmlType.Q3_K;

    /// <inheritdoc />
    public override int BlockBytes => 110;

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
                var y = (BlockQ3K*)(pd + i * BlockBytes);
                if (importance.IsEmpty) QuantizeBlockRef(px + i * BlockElements, y);
                else QuantizeBlockWeighted(px + i * BlockElements, pw + i * BlockElements, y);
            }
        }
    }

    /// <summary>ggml quantize_row_q3_K_ref for one block.</summary>
    private static void QuantizeBlockRef(float* x, BlockQ3K* y)
    {
        sbyte* L = stackalloc sbyte[256];
        float* scales = stackalloc float[16];
        float maxScale = 0, amax = 0;
        for (int j = 0; j < 16; ++j)
        {
            scales[j] = KQuantSearch.MakeQ3Quants(16, 4, x + 16 * j, L + 16 * j, true);
            float scale = MathF.Abs(scales[j]);
            if (scale > amax) { amax = scale; maxScale = scales[j]; }
        }
        for (int j = 0; j < 12; j++) y->Scales[j] = 0;
        if (maxScale != 0)
        {
            float iscale = -32f / maxScale;
            for (int j = 0; j < 16; ++j)
            {
                int l = (sbyte)NearestInt(iscale * scales[j]);
                l = Math.Max(-32, Math.Min(31, l)) + 32;
                StoreScale(y->Scales, j, l);
            }
            y->D = Fp32ToFp16(1 / iscale);
        }
        else
        {
            y->D = Fp32ToFp16(0f);
        }
        Finish(x, y, L);
    }

    /// <summary>ggml quantize_row_q3_K_impl (imatrix path) for one block.</summary>
    private static void QuantizeBlockWeighted(float* x, float* qw, BlockQ3K* y)
    {
        sbyte* L = stackalloc sbyte[256];
        float* scales = stackalloc float[16];
        float* weight = stackalloc float[16];
        float* sw = stackalloc float[16];
        sbyte* ls = stackalloc sbyte[16];
        float sumx2 = 0;
        for (int j = 0; j < 256; ++j) sumx2 += x[j] * x[j];
        float sigma2 = 2 * sumx2 / 256;
        for (int j = 0; j < 16; ++j)
        {
            for (int l = 0; l < 16; ++l) weight[l] = qw[16 * j + l] * MathF.Sqrt(sigma2 + x[16 * j + l] * x[16 * j + l]);
            float sumw = 0;
            for (int l = 0; l < 16; ++l) sumw += weight[l];
            sw[j] = sumw;
            scales[j] = KQuantSearch.MakeQxQuants(16, 4, x + 16 * j, L + 16 * j, 1, weight);
        }
        for (int j = 0; j < 12; j++) y->Scales[j] = 0;
        float dBlock = KQuantSearch.MakeQxQuants(16, 32, scales, ls, 1, sw);
        for (int j = 0; j < 16; ++j) StoreScale(y->Scales, j, ls[j]);
        y->D = Fp32ToFp16(dBlock);
        Finish(x, y, L);
    }

    private static void StoreScale(byte* scales, int j, int l)
    {
        if (j < 8) scales[j] = (byte)(l & 0xF);
        else scales[j - 8] |= (byte)((l & 0xF) << 4);
        l >>= 4;
        scales[j % 4 + 8] |= (byte)(l << (2 * (j / 4)));
    }

    /// <summary>The 6-bit scale of group <paramref name="j"/>, minus 32.</summary>
    private static int Scale(byte* scales, int j)
    {
        int sc = j < 8 ? scales[j] & 0xF : scales[j - 8] >> 4;
        return (sc | (((scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
    }

    /// <summary>Requantizes with the stored scales and packs low bits and high-bit mask (shared tail of ref and impl).</summary>
    private static void Finish(float* x, BlockQ3K* y, sbyte* L)
    {
        for (int j = 0; j < 16; ++j)
        {
            float d = Fp16ToFp32(y->D) * (sbyte)Scale(y->Scales, j);
            if (d == 0) continue;
            for (int ii = 0; ii < 16; ++ii)
            {
                int l = NearestInt(x[16 * j + ii] / d);
                L[16 * j + ii] = (sbyte)(Math.Max(-4, Math.Min(3, l)) + 4);
            }
        }
        for (int j = 0; j < 32; j++) y->HMask[j] = 0;
        int m = 0;
        byte hm = 1;
        for (int j = 0; j < 256; ++j)
        {
            if (L[j] > 3)
            {
                y->HMask[m] |= hm;
                L[j] -= 4;
            }
            if (++m == 32) { m = 0; hm <<= 1; }
        }
        byte* u = (byte*)L; // every level is 0..3 now
        for (int j = 0; j < 256; j += 128)
        {
            for (int l = 0; l < 32; ++l)
                y->Qs[j / 4 + l] = (byte)(u[j + l] | (u[j + l + 32] << 2) | (u[j + l + 64] << 4) | (u[j + l + 96] << 6));
        }
    }

    /// <inheritdoc />
    public override void DequantizeRow(ReadOnlySpan<byte> source, Span<float> destination)
    {
        CheckDequantizeArgs(Name, BlockBytes, source, destination);
        int nb = destination.Length / BlockElements;
        int* sc = stackalloc int[16];
        fixed (byte* ps = source)
        fixed (float* pd = destination)
        {
            float* y = pd;
            for (int i = 0; i < nb; i++)
            {
                var b = (BlockQ3K*)(ps + i * BlockBytes);
                float dAll = Fp16ToFp32(b->D);
                for (int j = 0; j < 16; j++) sc[j] = Scale(b->Scales, j);
                byte* q = b->Qs;
                int m = 1, s = 0;
                for (int n = 0; n < 256; n += 128)
                {
                    int shift = 0;
                    for (int j = 0; j < 4; ++j)
                    {
                        float dl = dAll * sc[s++];
                        for (int l = 0; l < 16; ++l) *y++ = dl * (((q[l] >> shift) & 3) - ((b->HMask[l] & m) != 0 ? 0 : 4));
                        dl = dAll * sc[s++];
                        for (int l = 0; l < 16; ++l) *y++ = dl * (((q[l + 16] >> shift) & 3) - ((b->HMask[l + 16] & m) != 0 ? 0 : 4));
                        shift += 2;
                        m <<= 1;
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
                var x = (BlockQ3K*)(row + i * 110);
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
            var x = (BlockQ3K*)(row + i * 110);
            UnpackVector(x, q);
            for (int g = 0; g < 16; g++)
            {
                sc16[g] = Scale(x->Scales, g);
                bias16[g] = 4 * sc16[g];
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

    private static float DotBlockScalar(BlockQ3K* x, BlockQ8K* a)
    {
        int sumi = 0;
        for (int e = 0; e < 256; e++)
        {
            int half = e / 128, j = e % 128 / 32, l = e % 32;
            int v = ((x->Qs[32 * half + l] >> (2 * j)) & 3) - ((x->HMask[l] >> (4 * half + j) & 1) != 0 ? 0 : 4);
            sumi += Scale(x->Scales, e / 16) * v * a->Qs[e];
        }
        return Fp16ToFp32(x->D) * a->D * sumi;
    }

    private static void UnpackVector(BlockQ3K* x, byte* q)
    {
        var three = Vector128.Create((byte)3);
        var one = Vector128.Create((byte)1);
        for (int h = 0; h < 32; h += 16)
        {
            var hm = Vector128.Load(x->HMask + h);
            for (int half = 0; half < 2; half++)
            {
                var v = Vector128.Load(x->Qs + 32 * half + h);
                for (int j = 0; j < 4; j++)
                {
                    var low = Vector128.ShiftRightLogical(v, 2 * j) & three;
                    var high = Vector128.ShiftLeft(Vector128.ShiftRightLogical(hm, 4 * half + j) & one, 2);
                    (low | high).Store(q + 128 * half + 32 * j + h);
                }
            }
        }
    }
}
