using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static QuantServe.Engine.Quantization.Formats.KQuantMath;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>
/// Matrix–matrix product for Q4_K and Q6_K weights and prompt batches of 16 or more Q8_K activation vectors (AVX-512 BW),
/// one token per 32-bit lane — the k-quant counterpart of <see cref="LegacyGemm"/> (see there for why this layout).
/// Per super-block of row r and token t (activation scale d_a, quants a_k, 16-element sums bsum_j), exactly as ggml:
/// Q4_K: <c>sumi = Σ_j sc_j·Σ_{k∈j} q_k·a_k</c>, <c>summ = Σ_j m_j·(bsum_2j + bsum_2j+1)</c> (8 sub-blocks of 32),
/// <c>y += (d·d_a)·sumi − (dmin·d_a)·summ</c>; Q6_K: <c>sumi = Σ_j sc_j·Σ_{k∈j} (q_k − 32)·a_k</c> (16 sub-blocks of 16)
/// computed as <c>Σ_j sc_j·Σ q_k·a_k − 32·Σ_j sc_j·bsum_j</c>, <c>y += (d·d_a)·sumi</c>. Integer sums are exact;
/// only the float accumulation order differs from the row kernels.
/// </summary>
internal static unsafe class KQuantGemm
{
    /// <summary>Tokens per tile: one per 32-bit lane of a 512-bit vector.</summary>
    public const int Lanes = 16;

    // Per tile and super-block: 64 vectors of quants (group g = elements 4g..4g+3 of 16 tokens), the 16 activation
    // scales, then 8 vectors of bsum pairs (lane t: int16 bsum_2p, bsum_2p+1 of token t).
    private const int BlockTileBytes = 64 * 64 + 64 + 8 * 64;

    // Per row and super-block, decoded: 256 unsigned quants in element order, 16 int32 sub-block scales (the scale in
    // both int16 halves, for vpmaddwd), 8 int32 bsum-pair multipliers, d and dmin as float.
    private const int DecodedBlockBytes = 256 + 16 * 4 + 8 * 4 + 8;
    private const long PanelBytes = 32 * 1024;

    [ThreadStatic] private static byte[]? _activationScratch;
    [ThreadStatic] private static byte[]? _weightScratch;

    /// <summary>Whether this CPU runs the kernel.</summary>
    public static bool IsSupported => Avx512BW.IsSupported && Avx512F.IsSupported;

    /// <summary>Whether <paramref name="format"/> has a kernel here.</summary>
    public static bool Handles(KQuantFormat format) => format is Q4KFormat or Q6KFormat;

    /// <summary>Bytes of one regrouped 16-token tile of Q8_K activations for rows of <paramref name="nb"/> super-blocks.</summary>
    public static long TileBytes(int nb) => (long)nb * BlockTileBytes;

    /// <summary>Regroups 16 prepared Q8_K vectors (<paramref name="stride"/> bytes apart) into one tile (same for Q4_K and Q6_K).</summary>
    public static void Tile(byte* act, int stride, int nb, byte* tile) => Regroup(act, stride, nb, tile);

    /// <summary>
    /// <c>y[b·yStride + r]</c> for the <paramref name="rowCount"/> rows at <paramref name="rows"/> (<paramref name="rowBytes"/>
    /// apart; y already offset to the first) and the first <paramref name="tiles"/>·16 prepared Q8_K vectors, or their
    /// regrouped form <paramref name="tiled"/> (from <see cref="Tile"/>) where not null.
    /// </summary>
    public static void Run(KQuantFormat format, byte* rows, long rowBytes, int rowCount, int nb, byte* act, int stride, int tiles, byte* tiled, float* y, int yStride)
    {
        if (format is Q4KFormat) Run<GemmQ4K>(rows, rowBytes, rowCount, nb, act, stride, tiles, tiled, y, yStride);
        else if (format is Q6KFormat) Run<GemmQ6K>(rows, rowBytes, rowCount, nb, act, stride, tiles, tiled, y, yStride);
        else throw new ArgumentException($"{format.Name} has no matrix-matrix kernel", nameof(format));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Run<TW>(byte* rows, long rowBytes, int rowCount, int nb, byte* act, int stride, int tiles, byte* tiled, float* y, int yStride)
        where TW : struct, IKQuantGemmWeights
    {
        byte* tile = tiled;
        if (tile == null)
        {
            tile = Scratch(ref _activationScratch, (long)tiles * nb * BlockTileBytes);
            for (int k = 0; k < tiles; k++) Regroup(act + (long)k * Lanes * stride, stride, nb, tile + (long)k * nb * BlockTileBytes);
        }

        int panel = (int)Math.Clamp(PanelBytes / ((long)nb * DecodedBlockBytes), 4, 64) & ~3;
        long decodedRow = (long)nb * DecodedBlockBytes;
        byte* decoded = Scratch(ref _weightScratch, panel * decodedRow);
        for (int p0 = 0; p0 < rowCount; p0 += panel)
        {
            int count = Math.Min(panel, rowCount - p0);
            for (int r = 0; r < count; r++)
                for (int i = 0; i < nb; i++)
                    TW.Decode(rows + (p0 + r) * rowBytes + i * TW.BlockBytes, decoded + r * decodedRow + i * DecodedBlockBytes);
            for (int k = 0; k < tiles; k++)
            {
                byte* t = tile + (long)k * nb * BlockTileBytes;
                float* yk = y + (long)k * Lanes * yStride + p0;
                int r = 0;
                for (; r + 4 <= count; r += 4) Rows<TW, LegacyTile4>(decoded + r * decodedRow, decodedRow, nb, t, yk + r, yStride);
                for (; r < count; r++) Rows<TW, LegacyTile1>(decoded + r * decodedRow, decodedRow, nb, t, yk + r, yStride);
            }
        }
    }

    private static byte* Scratch(ref byte[]? buffer, long bytes)
    {
        if (buffer == null || buffer.Length < bytes + 64)
            buffer = GC.AllocateUninitializedArray<byte>(checked((int)Math.Max(bytes + 64, 64 * 1024)), pinned: true);
        fixed (byte* b = buffer) return (byte*)(((nint)b + 63) & ~(nint)63); // pinned: the address is stable
    }

    /// <summary>Regroups 16 prepared Q8_K vectors into the tile layout (see <see cref="BlockTileBytes"/>).</summary>
    // Full optimisation from the first call, as for the kernels: tier-0 code of these loops is many times slower, and the
    // kernels' first calls (a server's first prompts, a benchmark's warm-up) would otherwise run it.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Regroup(byte* act, int stride, int nb, byte* tile)
    {
        for (int t = 0; t < Lanes; t++)
        {
            byte* token = act + (long)t * stride;
            for (int i = 0; i < nb; i++)
            {
                var a = (BlockQ8K*)(token + i * Q8KActivations.BlockBytes);
                uint* dst = (uint*)(tile + (long)i * BlockTileBytes) + t;
                uint* qs = (uint*)a->Qs;
                for (int g = 0; g < 64; g++) dst[16 * g] = qs[g];
                ((float*)dst)[16 * 64] = a->D;
                uint* pairs = (uint*)a->BSums;
                for (int p = 0; p < 8; p++) dst[16 * 65 + 16 * p] = pairs[p];
            }
        }
    }

    /// <summary>One or four decoded rows (<paramref name="rowStride"/> bytes apart) against one tile.</summary>
    // Optimised on its own too: the JIT may decline to inline a body this large, and a tier-0 copy would run until tiering.
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Rows<TW, TR>(byte* q, long rowStride, int nb, byte* tile, float* y, int yStride)
        where TW : struct, IKQuantGemmWeights where TR : struct, ILegacyTile
    {
        Vector512<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
        int perSum = TW.GroupsPerSum, perScale = TW.GroupsPerScale;
        for (int i = 0; i < nb; i++)
        {
            byte* a = tile + (long)i * BlockTileBytes;
            byte* w0 = q + (long)i * DecodedBlockBytes;
            byte* w1 = w0 + rowStride, w2 = w1 + rowStride, w3 = w2 + rowStride;
            Vector512<int> i0 = default, i1 = default, i2 = default, i3 = default;
            for (int g0 = 0; g0 < 64; g0 += perSum)
            {
                Vector512<short> s0 = default, s1 = default, s2 = default, s3 = default;
                for (int g = g0; g < g0 + perSum; g++)
                {
                    var ya = Vector512.Load((sbyte*)(a + 64 * g));
                    s0 += Avx512BW.MultiplyAddAdjacent(Vector512.Create(*(uint*)(w0 + 4 * g)).AsByte(), ya);
                    if (TR.N > 1)
                    {
                        s1 += Avx512BW.MultiplyAddAdjacent(Vector512.Create(*(uint*)(w1 + 4 * g)).AsByte(), ya);
                        s2 += Avx512BW.MultiplyAddAdjacent(Vector512.Create(*(uint*)(w2 + 4 * g)).AsByte(), ya);
                        s3 += Avx512BW.MultiplyAddAdjacent(Vector512.Create(*(uint*)(w3 + 4 * g)).AsByte(), ya);
                    }
                }
                int scale = 256 + 4 * (g0 / perScale);
                i0 += Avx512BW.MultiplyAddAdjacent(s0, Vector512.Create(*(int*)(w0 + scale)).AsInt16());
                if (TR.N > 1)
                {
                    i1 += Avx512BW.MultiplyAddAdjacent(s1, Vector512.Create(*(int*)(w1 + scale)).AsInt16());
                    i2 += Avx512BW.MultiplyAddAdjacent(s2, Vector512.Create(*(int*)(w2 + scale)).AsInt16());
                    i3 += Avx512BW.MultiplyAddAdjacent(s3, Vector512.Create(*(int*)(w3 + scale)).AsInt16());
                }
            }
            var da = Vector512.Load((float*)(a + 64 * 64));
            acc0 = Finish<TW>(w0, a, i0, da, acc0);
            if (TR.N > 1)
            {
                acc1 = Finish<TW>(w1, a, i1, da, acc1);
                acc2 = Finish<TW>(w2, a, i2, da, acc2);
                acc3 = Finish<TW>(w3, a, i3, da, acc3);
            }
        }
        Store(acc0, y, yStride);
        if (TR.N > 1)
        {
            Store(acc1, y + 1, yStride);
            Store(acc2, y + 2, yStride);
            Store(acc3, y + 3, yStride);
        }
    }

    /// <summary>The bsum-pair term (Q4_K mins, Q6_K's −32 bias), then the super-block's scaled contribution.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Finish<TW>(byte* w, byte* a, Vector512<int> sumi, Vector512<float> da, Vector512<float> acc)
        where TW : struct, IKQuantGemmWeights
    {
        byte* pairs = a + 65 * 64;
        int* mult = (int*)(w + 256 + 64);
        var m = Avx512BW.MultiplyAddAdjacent(Vector512.Load((short*)pairs), Vector512.Create(mult[0]).AsInt16());
        for (int p = 1; p < 8; p++)
            m += Avx512BW.MultiplyAddAdjacent(Vector512.Load((short*)(pairs + 64 * p)), Vector512.Create(mult[p]).AsInt16());
        float* d = (float*)(w + 256 + 64 + 32);
        // Rounded as the row kernels do (each product, their difference, then the sum), because the two terms of Q4_K
        // can nearly cancel and a fused form would differ from them by more than a few ulps of the result.
        if (TW.HasMin)
            return acc + (Avx512F.ConvertToVector512Single(sumi) * (da * Vector512.Create(d[0]))
                - Avx512F.ConvertToVector512Single(m) * (da * Vector512.Create(d[1])));
        sumi -= Vector512.ShiftLeft(m, 5);
        return acc + Avx512F.ConvertToVector512Single(sumi) * (da * Vector512.Create(d[0]));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Store(Vector512<float> acc, float* y, int yStride)
    {
        for (int t = 0; t < Lanes; t++) y[(long)t * yStride] = acc.GetElement(t);
    }
}

/// <summary>How a k-quant super-block becomes the <see cref="KQuantGemm"/> decoded form.</summary>
internal unsafe interface IKQuantGemmWeights
{
    static abstract int BlockBytes { get; }

    /// <summary>Four-element groups summed in int16 before widening (the sums must stay within ±32767).</summary>
    static abstract int GroupsPerSum { get; }

    /// <summary>Four-element groups sharing one sub-block scale.</summary>
    static abstract int GroupsPerScale { get; }

    /// <summary>Whether the bsum-pair term is a separate dmin term (Q4_K) or the −32 bias folded into sumi (Q6_K).</summary>
    static abstract bool HasMin { get; }

    static abstract void Decode(byte* block, byte* decoded);
}

/// <summary>Q4_K: nibbles (≤ 15: eight groups sum to ≤ 30480), 8 sub-blocks of 32, mins paired per sub-block.</summary>
internal unsafe struct GemmQ4K : IKQuantGemmWeights
{
    public static int BlockBytes => 144;
    public static int GroupsPerSum => 8;
    public static int GroupsPerScale => 8;
    public static bool HasMin => true;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Decode(byte* block, byte* decoded)
    {
        var x = (BlockQ4K*)block;
        Q4KFormat.UnpackVector(x, decoded);
        int* scales = (int*)(decoded + 256);
        int* mins = scales + 16;
        for (int j = 0; j < 8; j++)
        {
            ScaleMinK4(j, x->Scales, out byte sc, out byte m);
            scales[j] = sc | (sc << 16);
            mins[j] = m | (m << 16);
        }
        float* d = (float*)(mins + 8);
        d[0] = Fp16ToFp32(x->D);
        d[1] = Fp16ToFp32(x->DMin);
    }
}

/// <summary>Q6_K: 6-bit values (≤ 63: two groups sum to ≤ 32004), 16 sub-blocks of 16, signed scales also weight the bias.</summary>
internal unsafe struct GemmQ6K : IKQuantGemmWeights
{
    public static int BlockBytes => 210;
    public static int GroupsPerSum => 2;
    public static int GroupsPerScale => 4;
    public static bool HasMin => false;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Decode(byte* block, byte* decoded)
    {
        var x = (BlockQ6K*)block;
        Q6KFormat.UnpackVector(x, decoded);
        int* scales = (int*)(decoded + 256);
        int* pairs = scales + 16;
        for (int j = 0; j < 16; j++) scales[j] = Pair(x->Scales[j], x->Scales[j]);
        for (int p = 0; p < 8; p++) pairs[p] = Pair(x->Scales[2 * p], x->Scales[2 * p + 1]);
        float* d = (float*)(pairs + 8);
        d[0] = Fp16ToFp32(x->D);
        d[1] = 0;
    }

    /// <summary>Two int16 values in one int32 (low half first), as vpmaddwd pairs them.</summary>
    private static int Pair(sbyte low, sbyte high) => (low & 0xFFFF) | (high << 16);
}
