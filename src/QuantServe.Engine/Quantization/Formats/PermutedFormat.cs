using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>
/// A matrix whose columns are stored in a permuted order: stored column i holds original input column
/// <c>Order[i]</c>. The product is <c>y = W·x = W_stored · x_perm</c> with <c>x_perm[i] = x[Order[i]]</c>, so the
/// activation is permuted once in <see cref="PrepareActivation"/> and the inner format's kernel runs unchanged. One
/// instance per matrix (the order is the matrix's own; GPTQ act-order checkpoints have one per layer).
/// </summary>
public sealed class PermutedFormat : TensorFormat
{
    [ThreadStatic] private static float[]? _scratch;
    private readonly int[] _order;

    /// <summary>Wraps <paramref name="inner"/> with the column order <paramref name="order"/> (a permutation of 0..cols−1).</summary>
    public PermutedFormat(TensorFormat inner, int[] order)
    {
        Inner = inner;
        var seen = new bool[order.Length];
        foreach (int c in order)
        {
            if ((uint)c >= (uint)order.Length || seen[c]) throw new ArgumentException("the column order is not a permutation", nameof(order));
            seen[c] = true;
        }
        _order = order;
    }

    /// <summary>The format of the stored (permuted) rows.</summary>
    public TensorFormat Inner { get; }

    /// <summary>Stored column i holds original column <c>Order[i]</c>.</summary>
    public ReadOnlySpan<int> Order => _order;

    /// <inheritdoc />
    public override string Name => Inner.Name + "+perm";

    /// <inheritdoc />
    public override long RowBytes(int cols) => Inner.RowBytes(cols);

    /// <inheritdoc />
    public override bool SupportsWidth(int cols) => cols == _order.Length && Inner.SupportsWidth(cols);

    /// <inheritdoc />
    public override int ActivationBytes(int cols) => Inner.ActivationBytes(cols);

    /// <inheritdoc />
    public override void PrepareActivation(ReadOnlySpan<float> x, Span<byte> destination)
    {
        if (x.Length != _order.Length) throw new ArgumentException($"{Name}: activation of {x.Length}, the matrix has {_order.Length} columns");
        var p = _scratch is { } s && s.Length >= x.Length ? s : (_scratch = new float[x.Length]);
        for (int i = 0; i < _order.Length; i++) p[i] = x[_order[i]];
        Inner.PrepareActivation(p.AsSpan(0, x.Length), destination);
    }

    /// <inheritdoc />
    public override void DotRows(WeightMatrix w, int rowStart, int rowEnd, ReadOnlySpan<byte> activations,
        int activationStride, int batch, Span<float> y, int yStride)
        => Inner.DotRows(InnerOf(w), rowStart, rowEnd, activations, activationStride, batch, y, yStride);

    /// <inheritdoc />
    public override void DequantizeRow(WeightMatrix w, int row, Span<float> destination)
    {
        var inner = InnerOf(w);
        var p = _scratch is { } s && s.Length >= w.Cols ? s : (_scratch = new float[w.Cols]);
        inner.DequantizeRow(row, p.AsSpan(0, w.Cols));
        for (int i = 0; i < _order.Length; i++) destination[_order[i]] = p[i];
    }

    /// <summary>The view of <paramref name="w"/>'s stored rows in the inner format.</summary>
    public WeightMatrix InnerOf(WeightMatrix w)
    {
        if (!ReferenceEquals(w.Format, this) || w.State is not PermutedState state)
            throw new ArgumentException($"{w.Name}: not a matrix of this permuted format");
        return state.Inner;
    }

    /// <summary>
    /// A matrix of this format over <paramref name="data"/> (rows in <see cref="Inner"/>'s layout, stored column order);
    /// <paramref name="owner"/> is kept alive with the matrix.
    /// </summary>
    public unsafe WeightMatrix CreateMatrix(string name, int rows, byte* data, object? owner)
    {
        var inner = new WeightMatrix(name, Inner, rows, _order.Length, data, -1, owner);
        return new WeightMatrix(name, this, rows, _order.Length, data, inner.RowBytes, new PermutedState(inner, owner));
    }

    private sealed record PermutedState(WeightMatrix Inner, object? Owner);
}
