namespace QuantServe.Engine.Formats.Safetensors;

/// <summary>
/// One tensor of a safetensors file: its header entry, validated against the file. <see cref="Begin"/> and
/// <see cref="End"/> are the header's <c>data_offsets</c>, relative to the start of the data section.
/// </summary>
public sealed unsafe class SafetensorsTensorInfo
{
    internal SafetensorsTensorInfo(SafetensorsFile file, string name, SafetensorsDType dtype, long[] shape, long begin, long end)
    {
        File = file;
        Name = name;
        DType = dtype;
        Shape = shape;
        Begin = begin;
        End = end;
    }

    /// <summary>The file holding the tensor.</summary>
    public SafetensorsFile File { get; }

    /// <summary>Tensor name as stored.</summary>
    public string Name { get; }

    /// <summary>Element type.</summary>
    public SafetensorsDType DType { get; }

    /// <summary>Dimensions, outermost first (row-major, C order).</summary>
    public IReadOnlyList<long> Shape { get; }

    /// <summary>Start of the data, relative to the data section.</summary>
    public long Begin { get; }

    /// <summary>End of the data (exclusive), relative to the data section.</summary>
    public long End { get; }

    /// <summary>Bytes of data.</summary>
    public long ByteLength => End - Begin;

    /// <summary>Number of elements (product of <see cref="Shape"/>; 1 for a scalar).</summary>
    public long ElementCount
    {
        get
        {
            long n = 1;
            foreach (var d in Shape) n *= d;
            return n;
        }
    }

    /// <summary>First byte of the data in the memory map; valid while <see cref="File"/> is open.</summary>
    public byte* Pointer => File.DataPointer + Begin;

    /// <summary>The data as a span (tensors of 2 GiB or more must be read through <see cref="Pointer"/>).</summary>
    public ReadOnlySpan<byte> Bytes => File.Mapped.Span(File.DataStart + Begin, checked((int)ByteLength));

    /// <summary>The shape as written in error messages: <c>[32000, 256]</c>.</summary>
    public string ShapeText => FormatShape(Shape);

    internal static string FormatShape(IEnumerable<long> shape) => "[" + string.Join(", ", shape) + "]";

    /// <inheritdoc />
    public override string ToString() => $"{Name} {DType} {ShapeText}";
}
