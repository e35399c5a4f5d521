using QuantServe.Engine.Kernels.Cpu;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>
/// Base of QuantServe's own round-to-nearest formats (<see cref="IntGroupFormat"/>, <see cref="CodebookFormat"/>,
/// <see cref="LlmInt8Format"/>): row-packed (row r at <c>Data + r·RowBytes</c>), any width, quantized from floats by
/// <see cref="QuantizeRow"/>.
/// </summary>
public abstract unsafe class RtnFormat : TensorFormat
{
    /// <summary>Quantizes one row of <c>x.Length</c> floats into <paramref name="destination"/> (<see cref="TensorFormat.RowBytes"/> bytes).</summary>
    public abstract void QuantizeRow(ReadOnlySpan<float> x, Span<byte> destination);

    /// <summary>
    /// Quantizes a whole matrix whose rows <see cref="WeightMatrix.DequantizeRow"/> yields, into <paramref name="destination"/>
    /// (<c>Rows · RowBytes(Cols)</c> bytes). Per-row formats quantize row by row; per-tensor formats override it.
    /// </summary>
    public virtual void QuantizeMatrix(WeightMatrix source, Span<byte> destination)
    {
        long rowBytes = RowBytes(source.Cols);
        CheckMatrix(source, destination.Length);
        var row = new float[source.Cols];
        for (int r = 0; r < source.Rows; r++)
        {
            source.DequantizeRow(r, row);
            QuantizeRow(row, destination.Slice((int)(r * rowBytes), (int)rowBytes));
        }
    }

    /// <summary>Creates the view of a matrix stored in this format, with whatever run-time state the format keeps per matrix.</summary>
    public virtual WeightMatrix CreateMatrix(string name, int rows, int cols, byte* data) => new(name, this, rows, cols, data);

    /// <summary>The dot kernel on an explicit instruction-set path (tests compare each path with the scalar one).</summary>
    internal abstract void DotRows(WeightMatrix w, int rowStart, int rowEnd, ReadOnlySpan<byte> activations,
        int activationStride, int batch, Span<float> y, int yStride, SimdPath path);

    /// <summary>Activation preparation on an explicit path (the default formats use the same code on every path).</summary>
    internal virtual void PrepareActivation(ReadOnlySpan<float> x, Span<byte> destination, SimdPath path) => PrepareActivation(x, destination);

    /// <inheritdoc />
    public sealed override void DotRows(WeightMatrix w, int rowStart, int rowEnd, ReadOnlySpan<byte> activations,
        int activationStride, int batch, Span<float> y, int yStride)
        => DotRows(w, rowStart, rowEnd, activations, activationStride, batch, y, yStride, RtnKernels.Best);

    /// <summary>Checks the common <see cref="TensorFormat.DotRows"/> arguments; false when there is nothing to do.</summary>
    protected bool CheckDot(WeightMatrix w, int rowStart, int rowEnd, int activationsLength, int activationStride, int batch, int yLength, int yStride)
    {
        if (!ReferenceEquals(w.Format, this)) throw new ArgumentException($"{w.Name}: stored as {w.Format.Name}, not {Name}");
        if (rowStart < 0 || rowEnd > w.Rows || rowStart > rowEnd)
            throw new ArgumentOutOfRangeException(nameof(rowStart), $"{w.Name}: rows [{rowStart}, {rowEnd}) outside 0..{w.Rows}");
        if (batch <= 0 || rowStart == rowEnd) return false;
        int prepared = ActivationBytes(w.Cols);
        if (activationStride < prepared && batch > 1)
            throw new ArgumentException($"{w.Name}: activation stride {activationStride} is shorter than one prepared vector ({prepared} bytes)");
        if ((long)(batch - 1) * activationStride + prepared > activationsLength)
            throw new ArgumentException($"{w.Name}: activations hold {activationsLength} bytes, too few for batch {batch}");
        if ((long)(batch - 1) * yStride + rowEnd > yLength)
            throw new ArgumentException($"{w.Name}: output holds {yLength} floats, too few for batch {batch}");
        return true;
    }

    /// <summary>Checks a quantization destination.</summary>
    protected void CheckRow(int cols, int destinationLength)
    {
        if (destinationLength < RowBytes(cols))
            throw new ArgumentException($"{Name}: destination holds {destinationLength} bytes, a row of {cols} needs {RowBytes(cols)}");
    }

    private void CheckMatrix(WeightMatrix source, int destinationLength)
    {
        if ((long)source.Rows * RowBytes(source.Cols) > destinationLength)
            throw new ArgumentException($"{source.Name}: destination holds {destinationLength} bytes, {Name} needs {source.Rows * RowBytes(source.Cols)}");
    }

    /// <summary>Checks a dequantization destination.</summary>
    protected static void CheckDequantize(WeightMatrix w, int row, int destinationLength)
    {
        if ((uint)row >= (uint)w.Rows) throw new ArgumentOutOfRangeException(nameof(row), $"{w.Name}: row {row} outside 0..{w.Rows}");
        if (destinationLength < w.Cols) throw new ArgumentException($"{w.Name}: destination holds {destinationLength} floats, row has {w.Cols}");
    }
}
