using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>
/// Matrix–matrix product for Q4_0 and Q8_0 weights and prompt batches of 16 or more Q8_0 activation vectors (AVX-512 BW),
/// with one token per 32-bit lane. For weight block i of row r (scale d_w, quants w_j) and token t (activation block
/// scale d_a, quants a_j): <c>sumi = Σ_j w_j·a_j</c> exactly in integers — computed as <c>Σ_j u_j·a_j − bias·Σ_j a_j</c>
/// over unsigned 4-bit planes u (Q4_0: u = nibble, bias 8; Q8_0: w + 128 = 16·u_hi + u_lo, bias 128) — then
/// <c>y[t, r] += (d_a·d_w)·sumi</c> in float (one fused multiply-add): the same per-block terms as <see cref="LegacyDot"/>.
/// <para>Why this layout: the row-per-lane kernels spend most of their time turning each block's integer lanes into a
/// scaled float sum, once per (row, token, block). Here the activations of 16 tokens are first regrouped so that a
/// vector holds the same four quants of 16 tokens; a weight's four nibbles are broadcast to every lane and vpmaddubsw
/// multiplies them with all 16 tokens at once. The per-block float work (convert, scale, accumulate) then covers 16
/// tokens with one instruction each. Weight rows are decoded once per panel into bytes (plus float scales) and reused by
/// every 16-token tile, so the nibble unpacking is paid once per row rather than once per token group.</para>
/// </summary>
internal static unsafe class LegacyGemm
{
    /// <summary>Tokens per tile: one per 32-bit lane of a 512-bit vector.</summary>
    public const int Lanes = 16;

    // Per tile and block: eight vectors of quants (group g = elements 4g..4g+3 of 16 tokens), the 16 activation scales,
    // then the 16 bias terms −8·Σa.
    private const int BlockTileBytes = 8 * 64 + 64 + 64;
    private const long PanelBytes = 24 * 1024;

    [ThreadStatic] private static byte[]? _activationScratch;
    [ThreadStatic] private static byte[]? _weightScratch;

    /// <summary>Whether this CPU runs the kernel.</summary>
    public static bool IsSupported => Avx512BW.IsSupported && Avx512F.IsSupported;

    /// <summary>Bytes of one regrouped 16-token tile of activations for rows of <paramref name="nb"/> blocks.</summary>
    public static long TileBytes(int nb) => (long)nb * BlockTileBytes;

    /// <summary>
    /// <c>y[b·yStride + r]</c> for rows [<paramref name="rowStart"/>, <paramref name="rowEnd"/>) and the first
    /// <paramref name="tiles"/>·16 activation vectors (prepared Q8_0, <paramref name="stride"/> bytes apart), or their
    /// regrouped form <paramref name="tiled"/> (from <see cref="TileQ4_0"/>) where not null.
    /// </summary>
    public static void Q4_0(WeightMatrix w, int rowStart, int rowEnd, int nb, byte* act, int stride, int tiles, byte* tiled, float* y, int yStride)
        => Run<GemmQ4_0>(w, rowStart, rowEnd, nb, act, stride, tiles, tiled, y, yStride);

    /// <summary>As <see cref="Q4_0"/> for Q8_0 weights (tiles from <see cref="TileQ8_0"/>).</summary>
    public static void Q8_0(WeightMatrix w, int rowStart, int rowEnd, int nb, byte* act, int stride, int tiles, byte* tiled, float* y, int yStride)
        => Run<GemmQ8_0>(w, rowStart, rowEnd, nb, act, stride, tiles, tiled, y, yStride);

    /// <summary>Regroups 16 prepared Q8_0 vectors into one tile for Q4_0 weights.</summary>
    public static void TileQ4_0(byte* act, int stride, int nb, byte* tile) => RegroupQ8_0(act, stride, nb, tile, GemmQ4_0.BiasShift);

    /// <summary>Regroups 16 prepared Q8_0 vectors into one tile for Q8_0 weights.</summary>
    public static void TileQ8_0(byte* act, int stride, int nb, byte* tile) => RegroupQ8_0(act, stride, nb, tile, GemmQ8_0.BiasShift);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Run<TW>(WeightMatrix w, int rowStart, int rowEnd, int nb, byte* act, int stride, int tiles, byte* tiled, float* y, int yStride)
        where TW : struct, IGemmWeights
    {
        byte* tile = tiled;
        if (tile == null)
        {
            tile = Scratch(ref _activationScratch, (long)tiles * nb * BlockTileBytes);
            for (int k = 0; k < tiles; k++) RegroupQ8_0(act + (long)k * Lanes * stride, stride, nb, tile + (long)k * nb * BlockTileBytes, TW.BiasShift);
        }

        int decodedBlock = 32 * TW.Planes;
        int panel = (int)Math.Clamp(PanelBytes / ((long)nb * (decodedBlock + 4)), 4, 64) & ~3;
        byte* decoded = Scratch(ref _weightScratch, (long)panel * nb * (decodedBlock + 4));
        float* dw = (float*)(decoded + (long)panel * nb * decodedBlock);
        long rowBytes = w.RowBytes;
        long decodedRow = (long)nb * decodedBlock;
        for (int p0 = rowStart; p0 < rowEnd; p0 += panel)
        {
            int rows = Math.Min(panel, rowEnd - p0);
            for (int r = 0; r < rows; r++) TW.DecodeRow(w.Data + (p0 + r) * rowBytes, nb, decoded + r * decodedRow, dw + r * nb);
            for (int k = 0; k < tiles; k++)
            {
                byte* t = tile + (long)k * nb * BlockTileBytes;
                float* yk = y + (long)k * Lanes * yStride + p0;
                int r = 0;
                for (; r + 4 <= rows; r += 4) Rows<TW, LegacyTile4>(decoded + r * decodedRow, dw + r * nb, nb, t, yk + r, yStride);
                for (; r < rows; r++) Rows<TW, LegacyTile1>(decoded + r * decodedRow, dw + r * nb, nb, t, yk + r, yStride);
            }
        }
    }

    private static byte* Scratch(ref byte[]? buffer, long bytes)
    {
        if (buffer == null || buffer.Length < bytes + 64)
            buffer = GC.AllocateUninitializedArray<byte>(checked((int)Math.Max(bytes + 64, 64 * 1024)), pinned: true);
        fixed (byte* b = buffer) return (byte*)(((nint)b + 63) & ~(nint)63); // pinned: the address is stable
    }

    /// <summary>Regroups 16 prepared Q8_0 vectors into the tile layout (see <see cref="BlockTileBytes"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RegroupQ8_0(byte* act, int stride, int nb, byte* tile, int biasShift)
    {
        int scalesOffset = Q8Activations.ScalesOffset(nb, false);
        var onesU8 = Vector512.Create((byte)1);
        for (int t = 0; t < Lanes; t++)
        {
            byte* token = act + (long)t * stride;
            for (int i = 0; i < nb; i++)
            {
                uint* qs = (uint*)(token + i * Q8Activations.Q8_0BlockBytes + 2);
                uint* dst = (uint*)(tile + (long)i * BlockTileBytes) + t;
                for (int g = 0; g < 8; g++) dst[16 * g] = qs[g];
                dst[16 * 8] = ((uint*)(token + scalesOffset))[i];
            }
        }
        for (int i = 0; i < nb; i++)
        {
            byte* dst = tile + (long)i * BlockTileBytes;
            var sum = Vector512<short>.Zero;
            for (int g = 0; g < 8; g++) sum += Avx512BW.MultiplyAddAdjacent(onesU8, Vector512.Load((sbyte*)(dst + 64 * g)));
            var total = Avx512BW.MultiplyAddAdjacent(sum, Vector512<short>.One);
            (Vector512<int>.Zero - Vector512.ShiftLeft(total, biasShift)).Store((int*)(dst + 576));
        }
    }

    /// <summary>One or four decoded rows against one tile; results to <c>y[t·yStride + j]</c> for row j of the group.</summary>
    // Optimised on its own too: the JIT may decline to inline a body this large, and a tier-0 copy would run until tiering.
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Rows<TW, TR>(byte* q, float* dw, int nb, byte* tile, float* y, int yStride) where TW : struct, IGemmWeights where TR : struct, ILegacyTile
    {
        Vector512<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
        int rowStride = nb * 32 * TW.Planes;
        for (int i = 0; i < nb; i++)
        {
            byte* a = tile + (long)i * BlockTileBytes;
            var y0 = Vector512.Load((sbyte*)a);
            var y1 = Vector512.Load((sbyte*)(a + 64));
            var y2 = Vector512.Load((sbyte*)(a + 128));
            var y3 = Vector512.Load((sbyte*)(a + 192));
            var y4 = Vector512.Load((sbyte*)(a + 256));
            var y5 = Vector512.Load((sbyte*)(a + 320));
            var y6 = Vector512.Load((sbyte*)(a + 384));
            var y7 = Vector512.Load((sbyte*)(a + 448));
            var da = Vector512.Load((float*)(a + 512));
            var bias = Vector512.Load((int*)(a + 576));
            byte* qi = q + i * 32 * TW.Planes;
            acc0 = Block<TW>(qi, dw[i], y0, y1, y2, y3, y4, y5, y6, y7, da, bias, acc0);
            if (TR.N > 1)
            {
                acc1 = Block<TW>(qi + rowStride, dw[nb + i], y0, y1, y2, y3, y4, y5, y6, y7, da, bias, acc1);
                acc2 = Block<TW>(qi + 2 * rowStride, dw[2 * nb + i], y0, y1, y2, y3, y4, y5, y6, y7, da, bias, acc2);
                acc3 = Block<TW>(qi + 3 * rowStride, dw[3 * nb + i], y0, y1, y2, y3, y4, y5, y6, y7, da, bias, acc3);
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

    /// <summary>
    /// One weight block against 16 tokens: vpmaddubsw pairs (|q·a + q·a| ≤ 2·15·127) summed over the eight groups stay
    /// within int16 (≤ 30480), vpmaddwd widens, the bias −8·Σa is added in int32, then one FMA scales by d_a·d_w.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Block<TW>(byte* q, float dw,
        Vector512<sbyte> y0, Vector512<sbyte> y1, Vector512<sbyte> y2, Vector512<sbyte> y3,
        Vector512<sbyte> y4, Vector512<sbyte> y5, Vector512<sbyte> y6, Vector512<sbyte> y7,
        Vector512<float> da, Vector512<int> bias, Vector512<float> acc) where TW : struct, IGemmWeights
    {
        var s = Plane(q, y0, y1, y2, y3, y4, y5, y6, y7);
        var sumi = Avx512BW.MultiplyAddAdjacent(s, Vector512<short>.One) + bias;
        if (TW.Planes > 1) sumi += Avx512BW.MultiplyAddAdjacent(Plane(q + 32, y0, y1, y2, y3, y4, y5, y6, y7), Vector512.Create((short)16));
        return Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(sumi), da * Vector512.Create(dw), acc);
    }

    /// <summary>Σ over the eight groups of vpmaddubsw(broadcast 4 unsigned nibbles, 16 tokens' 4 quants): int16 lanes,
    /// |each| ≤ 8·2·15·127 = 30480.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<short> Plane(byte* q,
        Vector512<sbyte> y0, Vector512<sbyte> y1, Vector512<sbyte> y2, Vector512<sbyte> y3,
        Vector512<sbyte> y4, Vector512<sbyte> y5, Vector512<sbyte> y6, Vector512<sbyte> y7)
    {
        var s = Avx512BW.MultiplyAddAdjacent(Vector512.Create(*(uint*)q).AsByte(), y0)
            + Avx512BW.MultiplyAddAdjacent(Vector512.Create(*(uint*)(q + 4)).AsByte(), y1);
        s += Avx512BW.MultiplyAddAdjacent(Vector512.Create(*(uint*)(q + 8)).AsByte(), y2)
            + Avx512BW.MultiplyAddAdjacent(Vector512.Create(*(uint*)(q + 12)).AsByte(), y3);
        s += Avx512BW.MultiplyAddAdjacent(Vector512.Create(*(uint*)(q + 16)).AsByte(), y4)
            + Avx512BW.MultiplyAddAdjacent(Vector512.Create(*(uint*)(q + 20)).AsByte(), y5);
        s += Avx512BW.MultiplyAddAdjacent(Vector512.Create(*(uint*)(q + 24)).AsByte(), y6)
            + Avx512BW.MultiplyAddAdjacent(Vector512.Create(*(uint*)(q + 28)).AsByte(), y7);
        return s;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Store(Vector512<float> acc, float* y, int yStride)
    {
        for (int t = 0; t < Lanes; t++) y[(long)t * yStride] = acc.GetElement(t);
    }
}

/// <summary>How a legacy format's weight row becomes the <see cref="LegacyGemm"/> form: per block, <see cref="Planes"/>
/// runs of 32 unsigned 4-bit values in element order and the float scale; value = Σ_p 16^p·plane_p − 2^BiasShift.</summary>
internal unsafe interface IGemmWeights
{
    static abstract int Planes { get; }
    static abstract int BiasShift { get; }
    static abstract void DecodeRow(byte* row, int nb, byte* planes, float* scales);
}

/// <summary>Q4_0: one plane (the nibbles), bias 8.</summary>
internal unsafe struct GemmQ4_0 : IGemmWeights
{
    public static int Planes => 1;
    public static int BiasShift => 3;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void DecodeRow(byte* row, int nb, byte* planes, float* scales)
    {
        float* table = GgmlFp16.TablePointer;
        var mask = Vector128.Create((byte)0x0F);
        for (int i = 0; i < nb; i++)
        {
            byte* wb = row + i * 18;
            var v = Vector128.Load(wb + 2);
            (v & mask).Store(planes + i * 32);
            (Vector128.ShiftRightLogical(v, 4) & mask).Store(planes + i * 32 + 16);
            scales[i] = table[*(ushort*)wb];
        }
    }
}

/// <summary>Q8_0: q + 128 split into low and high nibbles (two planes), bias 128.</summary>
internal unsafe struct GemmQ8_0 : IGemmWeights
{
    public static int Planes => 2;
    public static int BiasShift => 7;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void DecodeRow(byte* row, int nb, byte* planes, float* scales)
    {
        float* table = GgmlFp16.TablePointer;
        var mask = Vector256.Create((byte)0x0F);
        for (int i = 0; i < nb; i++)
        {
            byte* wb = row + i * 34;
            var u = Vector256.Load(wb + 2) ^ Vector256.Create((byte)0x80);
            (u & mask).Store(planes + i * 64);
            Vector256.ShiftRightLogical(u, 4).Store(planes + i * 64 + 32);
            scales[i] = table[*(ushort*)wb];
        }
    }
}
