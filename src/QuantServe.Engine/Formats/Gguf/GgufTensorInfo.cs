using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Formats.Gguf;

/// <summary>
/// One tensor of a GGUF file: name, dimensions in ggml order (<c>ne[0]</c> = row length, the fastest-varying),
/// ggml type, offset relative to the aligned data section, and — for a tensor read from a file — a pointer to its
/// bytes inside the memory map (valid until the <see cref="GgufFile"/> is disposed).
/// </summary>
public sealed unsafe class GgufTensorInfo
{
    private readonly MappedFile _file;
    private readonly byte* _data;

    internal GgufTensorInfo(string name, long[] dimensions, GgmlType type, long offset, long elementCount, long byteSize, MappedFile file, byte* data)
    {
        _file = file;
        _data = data;
        Name = name;
        Dimensions = dimensions;
        Type = type;
        Offset = offset;
        ElementCount = elementCount;
        ByteSize = byteSize;
    }

    /// <summary>Tensor name, e.g. <c>blk.0.attn_q.weight</c>.</summary>
    public string Name { get; }

    /// <summary>Dimensions in ggml order: <c>Dimensions[0]</c> is the row length (columns).</summary>
    public IReadOnlyList<long> Dimensions { get; }

    /// <summary>Storage type.</summary>
    public GgmlType Type { get; }

    /// <summary>Offset of the first byte relative to the start of the data section.</summary>
    public long Offset { get; }

    /// <summary>Number of elements (product of the dimensions).</summary>
    public long ElementCount { get; }

    /// <summary>Bytes of the stored tensor: <c>ElementCount / BlockSize × TypeSize</c>.</summary>
    public long ByteSize { get; }

    /// <summary>First byte of the tensor in the mapped file; throws <see cref="ObjectDisposedException"/> once the file is closed.</summary>
    public byte* Data => _file.Pointer != null || ByteSize == 0 ? _data
        : throw new ObjectDisposedException(_file.Path, $"tensor '{Name}': its GGUF file has been closed");

    /// <summary>Elements per row (<c>ne[0]</c>; 1 for a zero-dimensional tensor).</summary>
    public long Cols => Dimensions.Count > 0 ? Dimensions[0] : 1;

    /// <summary>Rows when viewed as a matrix: the product of <c>ne[1..]</c>.</summary>
    public long Rows => Cols == 0 ? 0 : ElementCount / Cols;

    /// <summary>The tensor's bytes (tensors over 2 GiB must be read through <see cref="Data"/>).</summary>
    public ReadOnlySpan<byte> Span => ByteSize <= int.MaxValue
        ? new ReadOnlySpan<byte>(Data, (int)ByteSize)
        : throw new InvalidOperationException($"tensor '{Name}' has {ByteSize} bytes, more than a span can address; use Data");

    /// <summary>The dimensions as ggml prints them, e.g. <c>[256, 32000]</c>.</summary>
    public string Shape => $"[{string.Join(", ", Dimensions)}]";

    /// <inheritdoc />
    public override string ToString() => $"{Name} {Shape} {Type}";
}
