using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>
/// Common traits of ggml's legacy 32-weight block formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0): row layout, Q8_0/Q8_1
/// activation preparation, a reference quantizer bit-exact with ggml's <c>quantize_row_*_ref</c>, exact dequantization
/// and the fused dot kernel on a run-time chosen <see cref="LegacyKernelPath"/>.
/// </summary>
public abstract unsafe class LegacyQuantFormat : TensorFormat
{
    /// <summary>Weights per block (ggml's QK4_0 = QK4_1 = QK5_0 = QK5_1 = QK8_0 = 32).</summary>
    public const int BlockElements = 32;

    /// <summary>Bytes per block.</summary>
    public abstract int BlockBytes { get; }

    /// <summary>Whether the dot product takes Q8_1 activations (Q4_1, Q5_1) rather than Q8_0.</summary>
    public abstract bool UsesQ8_1 { get; }

    /// <inheritdoc />
    public override long RowBytes(int cols)
    {
        if (!SupportsWidth(cols)) throw new ArgumentException($"{Name}: row width {cols} is not a positive multiple of {BlockElements}");
        return (long)(cols / BlockElements) * BlockBytes;
    }

    /// <inheritdoc />
    public override bool SupportsWidth(int cols) => cols > 0 && cols % BlockElements == 0;

    /// <summary>Bytes of one activation vector as Q8_0 (34 per 32) or Q8_1 (36 per 32) blocks.</summary>
    public override int ActivationBytes(int cols) => UsesQ8_1 ? Q8Activations.Q8_1Bytes(cols) : Q8Activations.Q8_0Bytes(cols);

    /// <summary>Quantizes the activation to ggml's vec_dot_type for this format (see <see cref="Q8Activations"/>).</summary>
    public override void PrepareActivation(ReadOnlySpan<float> x, Span<byte> destination)
        => Q8Activations.Quantize(x, destination, UsesQ8_1, LegacyKernels.Best);

    /// <summary>Reference quantizer, bit-exact with ggml's <c>quantize_row_*_ref</c> (what llama-quantize uses without an imatrix).</summary>
    public abstract void QuantizeRow(ReadOnlySpan<float> x, Span<byte> destination);

    /// <summary>Exact ggml dequantization (<c>dequantize_row_*</c>) of whole blocks into <paramref name="destination"/>.</summary>
    public abstract void DequantizeRow(ReadOnlySpan<byte> source, Span<float> destination);

    /// <inheritdoc />
    public override void DequantizeRow(WeightMatrix w, int row, Span<float> destination)
        => DequantizeRow(w.RowSpan(row), destination[..w.Cols]);

    /// <inheritdoc />
    public override void DotRows(WeightMatrix w, int rowStart, int rowEnd,
        ReadOnlySpan<byte> activations, int activationStride, int batch, Span<float> y, int yStride)
        => DotRows(w, rowStart, rowEnd, activations, activationStride, batch, y, yStride, LegacyKernels.Best);

    /// <summary>
    /// <see cref="DotRows(WeightMatrix,int,int,ReadOnlySpan{byte},int,int,Span{float},int)"/> on an explicit kernel path.
    /// Per block: the integer sum <c>Σ(q_j − bias)·a_j</c> is exact on every path, then <c>acc += (d_w·d_a)·sumi</c>
    /// (+ <c>m_w·s_a</c>) in float; paths differ only in the order the float terms are added.
    /// </summary>
    public abstract void DotRows(WeightMatrix w, int rowStart, int rowEnd,
        ReadOnlySpan<byte> activations, int activationStride, int batch, Span<float> y, int yStride, LegacyKernelPath path);

    private protected void CheckQuantizeArgs(ReadOnlySpan<float> x, Span<byte> destination)
    {
        if (x.Length % BlockElements != 0)
            throw new ArgumentException($"{Name}: {x.Length} values is not a multiple of {BlockElements}", nameof(x));
        if (destination.Length < x.Length / BlockElements * BlockBytes)
            throw new ArgumentException($"{Name}: destination holds {destination.Length} bytes, needs {x.Length / BlockElements * BlockBytes}", nameof(destination));
    }

    private protected void CheckDequantizeArgs(ReadOnlySpan<byte> source, Span<float> destination)
    {
        if (destination.Length % BlockElements != 0)
            throw new ArgumentException($"{Name}: {destination.Length} values is not a multiple of {BlockElements}", nameof(destination));
        if (source.Length < destination.Length / BlockElements * BlockBytes)
            throw new ArgumentException($"{Name}: source holds {source.Length} bytes, needs {destination.Length / BlockElements * BlockBytes}", nameof(source));
    }

    /// <summary>Whether the format has a <see cref="LegacyGemm"/> matrix–matrix kernel (Q4_0, Q8_0).</summary>
    private protected virtual bool HasGemm => false;

    /// <summary>16 where <see cref="LegacyGemm"/> runs (AVX-512 BW path), else 0.</summary>
    public override int TileTokens => HasGemm && LegacyKernels.Best == LegacyKernelPath.Avx512 && LegacyGemm.IsSupported ? LegacyGemm.Lanes : 0;

    /// <inheritdoc />
    public override long TileBytes(int cols) => TileTokens == 0 || !SupportsWidth(cols) ? 0 : LegacyGemm.TileBytes(cols / BlockElements);

    /// <inheritdoc />
    public override void TileActivations(ReadOnlySpan<byte> prepared, int stride, int cols, Span<byte> tile)
    {
        long bytes = TileBytes(cols);
        if (bytes == 0) base.TileActivations(prepared, stride, cols, tile);
        if (tile.Length < bytes) throw new ArgumentException($"{Name}: tile holds {tile.Length} bytes, {bytes} needed");
        if ((long)(LegacyGemm.Lanes - 1) * stride + ActivationBytes(cols) > prepared.Length)
            throw new ArgumentException($"{Name}: {prepared.Length} bytes cannot hold {LegacyGemm.Lanes} prepared vectors {stride} bytes apart");
        fixed (byte* a = prepared)
        fixed (byte* t = tile)
            Tile(a, stride, cols / BlockElements, t);
    }

    /// <summary>The <see cref="LegacyGemm"/> regrouping of this format's tiles.</summary>
    private protected virtual void Tile(byte* prepared, int stride, int nb, byte* tile) => throw new NotSupportedException(Name);

    /// <inheritdoc />
    public override void DotRowsTiled(WeightMatrix w, int rowStart, int rowEnd, ReadOnlySpan<byte> activations, int activationStride,
        int batch, ReadOnlySpan<byte> tiles, Span<float> y, int yStride)
        => DotRows(w, rowStart, rowEnd, activations, activationStride, batch, y, yStride, LegacyKernels.Best, tiles);

    /// <summary>As <see cref="DotRows(WeightMatrix, int, int, ReadOnlySpan{byte}, int, int, Span{float}, int, LegacyKernelPath)"/>
    /// with the tiles of <see cref="TileActivations"/> (ignored by formats without a matrix–matrix kernel).</summary>
    private protected virtual void DotRows(WeightMatrix w, int rowStart, int rowEnd, ReadOnlySpan<byte> activations,
        int activationStride, int batch, Span<float> y, int yStride, LegacyKernelPath path, ReadOnlySpan<byte> tiles)
        => DotRows(w, rowStart, rowEnd, activations, activationStride, batch, y, yStride, path);
}
