using System.Runtime.CompilerServices;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>
/// Common traits of ggml's k-quant super-block formats (Q2_K..Q6_K): 256 weights per block, Q8_K activations,
/// reference quantizer with an optional importance-weight hook, exact dequantization and a fused dot kernel.
/// </summary>
public abstract unsafe class KQuantFormat : TensorFormat
{
    /// <summary>Weights per super-block (ggml's QK_K).</summary>
    public const int BlockElements = 256;

    /// <summary>Columns of the batch handled per pass over a row (bounds the stack accumulator).</summary>
    private const int BatchTile = 64;

    /// <summary>Bytes per super-block.</summary>
    public abstract int BlockBytes { get; }

    /// <inheritdoc />
    public override long RowBytes(int cols)
    {
        if (!SupportsWidth(cols)) throw new ArgumentException($"{Name}: row width {cols} is not a positive multiple of {BlockElements}");
        return (long)(cols / BlockElements) * BlockBytes;
    }

    /// <inheritdoc />
    public override bool SupportsWidth(int cols) => cols > 0 && cols % BlockElements == 0;

    /// <summary>Bytes of one Q8_K-quantized activation vector.</summary>
    public override int ActivationBytes(int cols) => Q8KActivations.ActivationBytes(cols);

    /// <summary>Quantizes the activation to Q8_K blocks (ggml's vec_dot_type for every k-quant).</summary>
    public override void PrepareActivation(ReadOnlySpan<float> x, Span<byte> destination) => Q8KActivations.Quantize(x, destination);

    /// <summary>
    /// Reference quantizer, bit-exact with llama.cpp: with no <paramref name="importance"/> it is ggml's
    /// <c>quantize_row_*_ref</c>; with per-column importance weights (an imatrix row, length = <paramref name="x"/>.Length)
    /// it is ggml's <c>quantize_row_*_impl</c> weighted search.
    /// </summary>
    public abstract void QuantizeRow(ReadOnlySpan<float> x, Span<byte> destination, ReadOnlySpan<float> importance = default);

    /// <summary>Exact ggml dequantization of one row of blocks into <paramref name="destination"/>.</summary>
    public abstract void DequantizeRow(ReadOnlySpan<byte> source, Span<float> destination);

    /// <inheritdoc />
    public override void DequantizeRow(WeightMatrix w, int row, Span<float> destination)
        => DequantizeRow(w.RowSpan(row), destination[..w.Cols]);

    /// <inheritdoc />
    public override void DotRows(WeightMatrix w, int rowStart, int rowEnd,
        ReadOnlySpan<byte> activations, int activationStride, int batch, Span<float> y, int yStride)
        => DotRows(w, rowStart, rowEnd, activations, activationStride, batch, y, yStride, KQuantKernels.Best);

    /// <summary>
    /// <see cref="DotRows(WeightMatrix,int,int,ReadOnlySpan{byte},int,int,Span{float},int)"/> on an explicit kernel path.
    /// Per super-block: the integer sum Σ_g scale_g · Σ_{i∈g} q_i · a_i is exact, then
    /// <c>acc += (d_w·d_a)·sumi − (dmin_w·d_a)·summ</c> in float, block by block, identically on every path.
    /// </summary>
    public void DotRows(WeightMatrix w, int rowStart, int rowEnd,
        ReadOnlySpan<byte> activations, int activationStride, int batch, Span<float> y, int yStride, KQuantKernelPath path)
        => DotRows(w, rowStart, rowEnd, activations, activationStride, batch, y, yStride, path, default);

    /// <summary>Every k-quant takes the same Q8_K activation vectors (and tiles).</summary>
    public override bool SharesActivations(TensorFormat other) => other is KQuantFormat;

    /// <summary>16 where <see cref="KQuantGemm"/> runs for this format, else 0.</summary>
    public override int TileTokens =>
        KQuantKernels.Best is KQuantKernelPath.Avx512 or KQuantKernelPath.Avx2 && KQuantGemm.IsSupported && KQuantGemm.Handles(this) ? KQuantGemm.Lanes : 0;

    /// <inheritdoc />
    public override long TileBytes(int cols) => TileTokens == 0 || !SupportsWidth(cols) ? 0 : KQuantGemm.TileBytes(cols / BlockElements);

    /// <inheritdoc />
    public override void TileActivations(ReadOnlySpan<byte> prepared, int stride, int cols, Span<byte> tile)
    {
        long bytes = TileBytes(cols);
        if (bytes == 0) base.TileActivations(prepared, stride, cols, tile);
        if (tile.Length < bytes) throw new ArgumentException($"{Name}: tile holds {tile.Length} bytes, {bytes} needed");
        if ((long)(KQuantGemm.Lanes - 1) * stride + ActivationBytes(cols) > prepared.Length)
            throw new ArgumentException($"{Name}: {prepared.Length} bytes cannot hold {KQuantGemm.Lanes} prepared vectors {stride} bytes apart");
        fixed (byte* a = prepared)
        fixed (byte* t = tile)
            KQuantGemm.Tile(a, stride, cols / BlockElements, t);
    }

    /// <inheritdoc />
    public override void DotRowsTiled(WeightMatrix w, int rowStart, int rowEnd, ReadOnlySpan<byte> activations, int activationStride,
        int batch, ReadOnlySpan<byte> tiles, Span<float> y, int yStride)
        => DotRows(w, rowStart, rowEnd, activations, activationStride, batch, y, yStride, KQuantKernels.Best, tiles);

    private void DotRows(WeightMatrix w, int rowStart, int rowEnd, ReadOnlySpan<byte> activations, int activationStride,
        int batch, Span<float> y, int yStride, KQuantKernelPath path, ReadOnlySpan<byte> tiles)
    {
        KQuantKernels.Check(path);
        int nb = w.Cols / BlockElements;
        if (!SupportsWidth(w.Cols)) throw new ArgumentException($"{w.Name}: width {w.Cols} does not fit {Name}");
        if (rowStart < 0 || rowEnd > w.Rows || rowStart > rowEnd) throw new ArgumentOutOfRangeException(nameof(rowStart));
        if (batch <= 0 || rowStart == rowEnd) return;
        if ((long)(batch - 1) * activationStride + nb * Q8KActivations.BlockBytes > activations.Length)
            throw new ArgumentException($"{w.Name}: activations too short for batch {batch}");
        if ((long)(batch - 1) * yStride + rowEnd > y.Length)
            throw new ArgumentException($"{w.Name}: output too short for batch {batch}");

        fixed (byte* pa = activations)
        fixed (byte* tiled = tiles)
        fixed (float* py = y)
        {
            byte* rows = w.Data + rowStart * w.RowBytes;
            int first = 0;
            if (path is KQuantKernelPath.Avx512 or KQuantKernelPath.Avx2 && batch >= KQuantGemm.Lanes && KQuantGemm.IsSupported && KQuantGemm.Handles(this))
            {
                // Whole 16-token tiles of a prompt go through the matrix-matrix kernel, the rest through the row kernels.
                // It runs on the AVX2 path too wherever AVX-512 BW exists: on AMD (where the row kernels pick AVX2) its
                // token-per-lane layout still does several times fewer instructions per multiply-add.
                int count = batch / KQuantGemm.Lanes;
                byte* shared = tiles.Length >= count * KQuantGemm.TileBytes(nb) ? tiled : null;
                KQuantGemm.Run(this, rows, w.RowBytes, rowEnd - rowStart, nb, pa, activationStride, count, shared, py + rowStart, yStride);
                first = count * KQuantGemm.Lanes;
            }
            for (int b0 = first; b0 < batch; b0 += BatchTile)
            {
                int n = Math.Min(BatchTile, batch - b0);
                DotRowRange(rows, w.RowBytes, rowEnd - rowStart, nb, pa + (long)b0 * activationStride, activationStride, n,
                    py + (long)b0 * yStride + rowStart, yStride, path);
            }
        }
    }

    /// <summary>
    /// For each of <paramref name="rowCount"/> weight rows (<paramref name="nb"/> blocks each, <paramref name="rowBytes"/> apart)
    /// and each of <paramref name="count"/> (≤ 64) Q8_K activation vectors (<paramref name="activationStride"/> bytes apart),
    /// writes <c>y[b·yStride + r]</c>. Implementations decode each weight block once and reuse it for every activation vector.
    /// </summary>
    [SkipLocalsInit]
    private protected void DotRowRange(byte* rows, long rowBytes, int rowCount, int nb, byte* activations, int activationStride,
        int count, float* y, int yStride, KQuantKernelPath path)
    {
        if (path == KQuantKernelPath.Avx512) { DotRowRangeAvx512(rows, rowBytes, rowCount, nb, activations, activationStride, count, y, yStride); return; }
        if (path == KQuantKernelPath.Avx2) { DotRowRangeAvx2(rows, rowBytes, rowCount, nb, activations, activationStride, count, y, yStride); return; }
        float* acc = stackalloc float[count];
        for (int r = 0; r < rowCount; r++)
        {
            new Span<float>(acc, count).Clear();
            DotRow(rows + r * rowBytes, nb, activations, activationStride, count, acc, path);
            for (int b = 0; b < count; b++) y[(long)b * yStride + r] = acc[b];
        }
    }

    /// <summary>The fused AVX-512 kernel of <see cref="DotRowRange"/> (one per format).</summary>
    private protected abstract void DotRowRangeAvx512(byte* rows, long rowBytes, int rowCount, int nb, byte* act, int stride, int count, float* y, int yStride);

    /// <summary>The fused AVX2 kernel of <see cref="DotRowRange"/> (one per format).</summary>
    private protected abstract void DotRowRangeAvx2(byte* rows, long rowBytes, int rowCount, int nb, byte* act, int stride, int count, float* y, int yStride);

    /// <summary>One weight row against <paramref name="count"/> activation vectors on the scalar or Vector128 path,
    /// accumulated into <paramref name="acc"/>.</summary>
    private protected abstract void DotRow(byte* row, int nb, byte* activations, int activationStride, int count, float* acc, KQuantKernelPath path);

    private protected static void CheckQuantizeArgs(string name, int blockBytes, ReadOnlySpan<float> x, Span<byte> destination, ReadOnlySpan<float> importance)
    {
        if (x.Length % BlockElements != 0)
            throw new ArgumentException($"{name}: {x.Length} values is not a multiple of {BlockElements}", nameof(x));
        if (destination.Length < x.Length / BlockElements * blockBytes)
            throw new ArgumentException($"{name}: destination holds {destination.Length} bytes, needs {x.Length / BlockElements * blockBytes}", nameof(destination));
        if (!importance.IsEmpty && importance.Length != x.Length)
            throw new ArgumentException($"{name}: {importance.Length} importance weights for {x.Length} values", nameof(importance));
    }

    private protected static void CheckDequantizeArgs(string name, int blockBytes, ReadOnlySpan<byte> source, Span<float> destination)
    {
        if (destination.Length % BlockElements != 0)
            throw new ArgumentException($"{name}: {destination.Length} values is not a multiple of {BlockElements}", nameof(destination));
        if (source.Length < destination.Length / BlockElements * blockBytes)
            throw new ArgumentException($"{name}: source holds {source.Length} bytes, needs {destination.Length / BlockElements * blockBytes}", nameof(source));
    }
}
