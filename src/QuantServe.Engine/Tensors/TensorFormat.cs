using System.Runtime.InteropServices;

namespace QuantServe.Engine.Tensors;

/// <summary>
/// The "type traits" of one weight storage format (ggml's type_traits row, in C#): how a row is laid out,
/// how to turn it back into floats, how activations are prepared for it, and the fused dot-product kernel.
/// Every format stores a matrix row by row: row <c>r</c> starts at <c>Data + r * RowBytes</c>.
/// </summary>
public abstract class TensorFormat
{
    /// <summary>The type name used everywhere (CLI, API, reports): <c>F16</c>, <c>Q4_K</c>, <c>int4-g128</c>, …</summary>
    public abstract string Name { get; }

    /// <summary>The ggml type id when this format is one of ggml's (and so can be stored in GGUF).</summary>
    public virtual GgmlType? Ggml => null;

    /// <summary>Bytes taken by one row of <paramref name="cols"/> elements.</summary>
    public abstract long RowBytes(int cols);

    /// <summary>Whether a row of <paramref name="cols"/> elements can be stored in this format (block formats need a multiple of their block).</summary>
    public virtual bool SupportsWidth(int cols) => true;

    /// <summary>Bytes of the prepared form of one activation vector of <paramref name="cols"/> elements
    /// (F32 copy by default; ggml types use their Q8 activation blocks).</summary>
    public virtual int ActivationBytes(int cols) => cols * sizeof(float);

    /// <summary>Prepares one activation vector for <see cref="DotRows"/>: by default a verbatim F32 copy.</summary>
    public virtual void PrepareActivation(ReadOnlySpan<float> x, Span<byte> destination)
        => MemoryMarshal.AsBytes(x).CopyTo(destination);

    /// <summary>
    /// The fused kernel: <c>y[b * yStride + r] = Σ_c W[r, c] · x_b[c]</c> for every row <c>r</c> in
    /// [<paramref name="rowStart"/>, <paramref name="rowEnd"/>) and every batch entry <c>b</c> in [0, <paramref name="batch"/>),
    /// where <c>x_b</c> is the prepared activation at byte offset <c>b * activationStride</c> of <paramref name="activations"/>.
    /// Called concurrently from several threads on disjoint row ranges.
    /// </summary>
    public abstract void DotRows(WeightMatrix w, int rowStart, int rowEnd,
        ReadOnlySpan<byte> activations, int activationStride, int batch, Span<float> y, int yStride);

    /// <summary>Whether activations prepared for <paramref name="other"/> (and their tiles) serve this format too, so a fused
    /// multiply over both prepares them once (the k-quants all take the same Q8_K vectors).</summary>
    public virtual bool SharesActivations(TensorFormat other) => ReferenceEquals(this, other);

    /// <summary>Tokens per activation tile of this format's matrix–matrix (prompt) kernel on this CPU, or 0 where it has none.
    /// A multiply over at least this many tokens regroups each whole tile once (<see cref="TileActivations"/>, all threads
    /// sharing the result) and calls <see cref="DotRowsTiled"/>.</summary>
    public virtual int TileTokens => 0;

    /// <summary>Bytes of one activation tile for rows of <paramref name="cols"/> elements (0 without tiles).</summary>
    public virtual long TileBytes(int cols) => 0;

    /// <summary>Regroups <see cref="TileTokens"/> prepared activation vectors (<paramref name="stride"/> bytes apart, from
    /// <see cref="PrepareActivation"/>) into one tile of <see cref="TileBytes"/> bytes.</summary>
    public virtual void TileActivations(ReadOnlySpan<byte> prepared, int stride, int cols, Span<byte> tile)
        => throw new NotSupportedException($"{Name} has no matrix-matrix activation tiles");

    /// <summary>
    /// <see cref="DotRows"/> where the first <c>tiles.Length / TileBytes(w.Cols)</c> × <see cref="TileTokens"/> prepared vectors
    /// are also given regrouped into tiles; the results equal <see cref="DotRows"/>'s (formats without tiles ignore them).
    /// </summary>
    public virtual void DotRowsTiled(WeightMatrix w, int rowStart, int rowEnd, ReadOnlySpan<byte> activations, int activationStride,
        int batch, ReadOnlySpan<byte> tiles, Span<float> y, int yStride)
        => DotRows(w, rowStart, rowEnd, activations, activationStride, batch, y, yStride);

    /// <summary>Writes row <paramref name="row"/> of <paramref name="w"/> as floats into <paramref name="destination"/> (length <c>w.Cols</c>).</summary>
    public abstract void DequantizeRow(WeightMatrix w, int row, Span<float> destination);

    /// <inheritdoc />
    public override string ToString() => Name;
}
