namespace QuantServe.Engine.Tensors;

/// <summary>
/// A weight matrix of <see cref="Rows"/> × <see cref="Cols"/> (row = output feature, column = input feature),
/// stored row-major in <see cref="Format"/>. <see cref="Data"/> points into a memory-mapped file or native memory
/// owned by the model; the matrix never owns a managed copy of its weights.
/// </summary>
public sealed unsafe class WeightMatrix
{
    /// <summary>Creates a view over <paramref name="data"/>; <paramref name="rowBytes"/> defaults to the format's row size.</summary>
    public WeightMatrix(string name, TensorFormat format, int rows, int cols, byte* data, long rowBytes = -1, object? state = null)
    {
        if (rows < 0 || cols < 0) throw new ArgumentOutOfRangeException(nameof(rows), $"{name}: negative shape {rows}×{cols}");
        Name = name;
        Format = format;
        Rows = rows;
        Cols = cols;
        Data = data;
        RowBytes = rowBytes >= 0 ? rowBytes : format.RowBytes(cols);
        State = state;
    }

    /// <summary>Tensor name as stored in the file (GGUF or Hugging Face naming).</summary>
    public string Name { get; }

    /// <summary>Storage format (type traits).</summary>
    public TensorFormat Format { get; }

    /// <summary>Output features.</summary>
    public int Rows { get; }

    /// <summary>Input features (elements per row).</summary>
    public int Cols { get; }

    /// <summary>First byte of row 0.</summary>
    public byte* Data { get; }

    /// <summary>Bytes from one row to the next.</summary>
    public long RowBytes { get; }

    /// <summary>Format-specific per-tensor state (for example a per-tensor scale), or null.</summary>
    public object? State { get; }

    /// <summary>Total bytes of the stored matrix.</summary>
    public long ByteCount => RowBytes * Rows;

    /// <summary>The bytes of row <paramref name="row"/>.</summary>
    public ReadOnlySpan<byte> RowSpan(int row) => new(Data + row * RowBytes, checked((int)RowBytes));

    /// <summary>Row <paramref name="row"/> as floats.</summary>
    public void DequantizeRow(int row, Span<float> destination) => Format.DequantizeRow(this, row, destination);

    /// <inheritdoc />
    public override string ToString() => $"{Name} [{Rows}×{Cols}] {Format.Name}";
}
