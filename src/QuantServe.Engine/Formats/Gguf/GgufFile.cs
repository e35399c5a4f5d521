using System.Text;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Formats.Gguf;

/// <summary>
/// A GGUF file (v2 or v3, little-endian) opened over a read-only memory map: header, ordered typed metadata and
/// tensor infos are parsed and validated up front; tensor data stays in the map and is reached through
/// <see cref="GgufTensorInfo.Data"/>.
/// <para>Layout: magic <c>"GGUF"</c>, uint32 version, uint64 tensor_count, uint64 metadata_kv_count, the key/value
/// pairs (string key, uint32 type, value), the tensor infos (string name, uint32 n_dims, uint64 ne[n_dims],
/// uint32 ggml type, uint64 offset), zero padding to <c>general.alignment</c> (default 32), then the data section;
/// each tensor's offset is relative to the data section and a multiple of the alignment.</para>
/// Every malformed input — truncation anywhere, wrong magic or version, counts or lengths that cannot fit in the
/// file, unknown types, overflowing shapes, misaligned or out-of-file data, duplicate names — raises
/// <see cref="ModelLoadException"/> naming the file and the problem, before anything is allocated from the bad number.
/// </summary>
public sealed unsafe class GgufFile : IDisposable
{
    /// <summary>The four magic bytes.</summary>
    public const uint Magic = 0x46554747; // "GGUF" read as a little-endian uint32

    /// <summary>Alignment of the data section and of every tensor when the file does not set <c>general.alignment</c>.</summary>
    public const int DefaultAlignment = 32;

    /// <summary>GGML_MAX_DIMS.</summary>
    public const int MaxDimensions = 4;

    private const int MaxNesting = 16;

    private readonly MappedFile _file;
    private readonly Dictionary<string, GgufTensorInfo> _byName;

    private GgufFile(MappedFile file, uint version, GgufMetadata metadata, int alignment, List<GgufTensorInfo> tensors,
        Dictionary<string, GgufTensorInfo> byName, long dataOffset)
    {
        _file = file;
        Version = version;
        Metadata = metadata;
        Alignment = alignment;
        Tensors = tensors;
        _byName = byName;
        DataOffset = dataOffset;
    }

    /// <summary>Full path of the file.</summary>
    public string Path => _file.Path;

    /// <summary>File length in bytes.</summary>
    public long Length => _file.Length;

    /// <summary>GGUF version (2 or 3).</summary>
    public uint Version { get; }

    /// <summary>Key/value metadata in file order.</summary>
    public GgufMetadata Metadata { get; }

    /// <summary>Alignment of the data section and of each tensor's offset.</summary>
    public int Alignment { get; }

    /// <summary>Tensor infos in file order.</summary>
    public IReadOnlyList<GgufTensorInfo> Tensors { get; }

    /// <summary>Absolute file offset of the data section.</summary>
    public long DataOffset { get; }

    /// <summary><c>general.architecture</c>, or null when absent.</summary>
    public string? Architecture => Metadata.GetStringOrNull("general.architecture");

    /// <summary>The tensor named <paramref name="name"/>, or null.</summary>
    public GgufTensorInfo? FindTensor(string name) => _byName.GetValueOrDefault(name);

    /// <summary>The tensor named <paramref name="name"/>; throws <see cref="ModelLoadException"/> when absent.</summary>
    public GgufTensorInfo Tensor(string name) =>
        FindTensor(name) ?? throw new ModelLoadException(Path, $"tensor '{name}' is missing");

    /// <summary>
    /// Tensor <paramref name="name"/> as a <see cref="WeightMatrix"/> view (rows = product of <c>ne[1..]</c>, cols = <c>ne[0]</c>)
    /// in the format registered for its ggml type; throws <see cref="ModelLoadException"/> when the tensor is missing,
    /// too large for a matrix view, or of a type QuantServe has no kernels for.
    /// </summary>
    public WeightMatrix Matrix(string name)
    {
        var t = Tensor(name);
        if (t.Cols > int.MaxValue || t.Rows > int.MaxValue)
            throw new ModelLoadException(Path, $"tensor '{name}' of shape {t.Shape} is too large for a matrix view");
        int rows = (int)t.Rows, cols = (int)t.Cols;
        var format = TensorFormats.ForGgml(t.Type)
            ?? throw new ModelLoadException(Path, $"tensor '{name}' is stored as {t.Type}, which QuantServe has no kernels for");
        if (!format.SupportsWidth(cols))
            throw new ModelLoadException(Path, $"tensor '{name}': {format.Name} cannot hold rows of {cols} elements");
        long rowBytes = format.RowBytes(cols);
        if (rowBytes * rows != t.ByteSize)
            throw new ModelLoadException(Path, $"tensor '{name}': {format.Name} rows of {rowBytes} bytes do not add up to the stored {t.ByteSize} bytes");
        return new WeightMatrix(name, format, rows, cols, t.Data, rowBytes);
    }

    /// <summary>Opens and validates <paramref name="path"/>.</summary>
    public static GgufFile Open(string path)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("GGUF reading needs a little-endian machine");
        var file = MappedFile.Open(path);
        try
        {
            return Parse(file);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    public void Dispose() => _file.Dispose();

    private static GgufFile Parse(MappedFile file)
    {
        var c = new GgufCursor(file.Path, file.Pointer, file.Length);
        uint magic = c.U32("magic");
        if (magic != Magic)
        {
            var raw = file.Span(0, 4);
            string shown = raw.ToArray().All(b => b is >= 0x20 and < 0x7f) ? $"'{Encoding.ASCII.GetString(raw)}'" : Convert.ToHexString(raw);
            throw c.Error($"not a GGUF file: magic is {shown}, expected 'GGUF'");
        }
        uint version = c.U32("version");
        if (version is 1)
            throw c.Error("GGUF version 1 is not supported (it used 32-bit counts and lengths); convert the model again with a current llama.cpp");
        if (version is not (2 or 3))
        {
            uint swapped = System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(version);
            throw c.Error(swapped is 2 or 3
                ? $"big-endian GGUF (version {swapped}) is not supported"
                : $"unknown GGUF version {version} (QuantServe reads versions 2 and 3)");
        }
        ulong tensorCountRaw = c.U64("tensor_count");
        ulong kvCountRaw = c.U64("metadata_kv_count");
        // A metadata entry needs at least a key length (8), a type (4) and a one-byte value; a tensor info at least
        // a name length (8), n_dims (4), a type (4) and an offset (8).
        const long minKv = 13, minTensor = 24;
        if (kvCountRaw > (ulong)(c.Remaining / minKv))
            throw c.Error($"metadata_kv_count {kvCountRaw} is impossible: {kvCountRaw} entries of at least {minKv} bytes cannot fit in the {c.Remaining} bytes after the header (truncated or corrupt file)");
        if (tensorCountRaw > (ulong)(c.Remaining / minTensor))
            throw c.Error($"tensor_count {tensorCountRaw} is impossible: {tensorCountRaw} tensor infos of at least {minTensor} bytes cannot fit in the {c.Remaining} bytes after the header (truncated or corrupt file)");
        int kvCount = (int)kvCountRaw, tensorCount = (int)tensorCountRaw;

        var metadata = new GgufMetadata(file.Path);
        for (int i = 0; i < kvCount; i++)
        {
            long at = c.Position;
            string key = Text(c.StringBytes($"key of metadata entry {i}"));
            uint type = c.U32($"type of metadata '{key}'");
            var value = ReadValue(c, (GgufValueType)type, $"metadata '{key}'", 0);
            if (!metadata.TryAdd(key, value))
                throw c.Error($"duplicate metadata key '{key}' (entry {i} at offset {at})");
        }

        int alignment = DefaultAlignment;
        if (metadata.Find("general.alignment") is { } alignValue)
        {
            if (!GgufValueTypes.IsInteger(alignValue.Type) || !alignValue.TryGetInteger(out long a))
                throw c.Error($"general.alignment has type {GgufMetadata.TypeName(alignValue)}, expected uint32");
            if (a <= 0 || a > 1 << 30 || (a & (a - 1)) != 0)
                throw c.Error($"general.alignment {a} is not a power of two");
            alignment = (int)a;
        }

        var infos = new List<(string Name, long[] Dims, GgmlType Type, long Offset, long Elements, long Bytes, long At)>(tensorCount);
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < tensorCount; i++)
        {
            long at = c.Position;
            string name = Text(c.StringBytes($"name of tensor {i}"));
            if (!names.Add(name)) throw c.Error($"duplicate tensor name '{name}' (tensor {i} at offset {at})");
            uint nDims = c.U32($"n_dims of tensor '{name}'");
            if (nDims > MaxDimensions) throw c.Error($"tensor '{name}' has {nDims} dimensions; GGUF allows at most {MaxDimensions}");
            var dims = new long[nDims];
            long elements = 1;
            for (int d = 0; d < nDims; d++)
            {
                ulong ne = c.U64($"dimension {d} of tensor '{name}'");
                if (ne > long.MaxValue) throw c.Error($"tensor '{name}' dimension {d} = {ne} is out of range");
                dims[d] = (long)ne;
                if (!TryMultiply(elements, (long)ne, out elements))
                    throw c.Error($"tensor '{name}' shape [{string.Join(", ", dims.Take(d + 1))}…] overflows: the element count exceeds 2^63");
            }
            uint typeId = c.U32($"type of tensor '{name}'");
            var type = (GgmlType)typeId;
            var geometry = GgmlTypeInfo.Geometry(type) ?? throw c.Error($"tensor '{name}' has unknown ggml type {typeId}");
            long rowLength = nDims > 0 ? dims[0] : 1;
            if (rowLength % geometry.BlockSize != 0)
                throw c.Error($"tensor '{name}' row length {rowLength} is not a multiple of the {type} block size {geometry.BlockSize}");
            long bytes = elements / geometry.BlockSize;
            if (!TryMultiply(bytes, geometry.TypeSize, out bytes))
                throw c.Error($"tensor '{name}' of shape [{string.Join(", ", dims)}] overflows: its byte size exceeds 2^63");
            ulong offsetRaw = c.U64($"data offset of tensor '{name}'");
            if (offsetRaw > long.MaxValue) throw c.Error($"tensor '{name}' data offset {offsetRaw} lies beyond the end of the file");
            long offset = (long)offsetRaw;
            if (offset % alignment != 0)
                throw c.Error($"tensor '{name}' data offset {offset} is not a multiple of the alignment {alignment}");
            infos.Add((name, dims, type, offset, elements, bytes, at));
        }

        long dataOffset = AlignUp(c.Position, alignment);
        if (tensorCount > 0 && dataOffset > file.Length)
            throw c.Error($"truncated file: the data section would start at offset {dataOffset} but the file is {file.Length} bytes");
        long dataLength = file.Length - dataOffset;
        var tensors = new List<GgufTensorInfo>(tensorCount);
        var byName = new Dictionary<string, GgufTensorInfo>(tensorCount, StringComparer.Ordinal);
        foreach (var t in infos)
        {
            if (t.Offset > dataLength || t.Bytes > dataLength - t.Offset)
                throw c.Error($"tensor '{t.Name}' data [{t.Offset}, {t.Offset + (decimal)t.Bytes}) relative to the data section at {dataOffset} lies beyond the end of the file ({file.Length} bytes; truncated file?)");
            var info = new GgufTensorInfo(t.Name, t.Dims, t.Type, t.Offset, t.Elements, t.Bytes, file, file.Pointer + dataOffset + t.Offset);
            tensors.Add(info);
            byName.Add(t.Name, info);
        }
        return new GgufFile(file, version, metadata, alignment, tensors, byName, dataOffset);
    }

    private static GgufValue ReadValue(GgufCursor c, GgufValueType type, string what, int depth)
    {
        switch (type)
        {
            case GgufValueType.String:
                return GgufValue.FromUtf8(c.StringBytes(what));
            case GgufValueType.Array:
                return ReadArray(c, what, depth);
            case GgufValueType.Bool:
            {
                long at = c.Position;
                byte b = c.U8(what);
                if (b > 1) throw c.Error($"{what} at offset {at} is a bool with byte value {b} (must be 0 or 1)");
                return GgufValue.ScalarFromBits(type, b);
            }
            default:
                int size = GgufValueTypes.ScalarSize(type);
                if (size == 0) throw c.Error($"{what} has unknown value type {(uint)type} at offset {c.Position - 4}");
                var raw = c.Bytes(size, what);
                ulong bits = size switch
                {
                    1 => raw[0],
                    2 => System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(raw),
                    4 => System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(raw),
                    _ => System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(raw),
                };
                return GgufValue.ScalarFromBits(type, bits);
        }
    }

    private static GgufValue ReadArray(GgufCursor c, string what, int depth)
    {
        if (depth >= MaxNesting) throw c.Error($"{what} nests arrays more than {MaxNesting} deep");
        long at = c.Position;
        var elementType = (GgufValueType)c.U32($"{what} element type");
        if (!GgufValueTypes.IsDefined(elementType))
            throw c.Error($"{what} at offset {at} is an array of unknown value type {(uint)elementType}");
        int count = c.Count($"{what} element count", GgufValueTypes.MinimumEncodedSize(elementType));
        Array items;
        switch (elementType)
        {
            case GgufValueType.UInt8: items = c.Array<byte>(count, what); break;
            case GgufValueType.Int8: items = c.Array<sbyte>(count, what); break;
            case GgufValueType.UInt16: items = c.Array<ushort>(count, what); break;
            case GgufValueType.Int16: items = c.Array<short>(count, what); break;
            case GgufValueType.UInt32: items = c.Array<uint>(count, what); break;
            case GgufValueType.Int32: items = c.Array<int>(count, what); break;
            case GgufValueType.Float32: items = c.Array<float>(count, what); break;
            case GgufValueType.UInt64: items = c.Array<ulong>(count, what); break;
            case GgufValueType.Int64: items = c.Array<long>(count, what); break;
            case GgufValueType.Float64: items = c.Array<double>(count, what); break;
            case GgufValueType.Bool:
            {
                var bools = c.Array<byte>(count, what);
                int bad = Array.FindIndex(bools, b => b > 1);
                if (bad >= 0) throw c.Error($"{what} element {bad} is a bool with byte value {bools[bad]} (must be 0 or 1)");
                items = bools;
                break;
            }
            case GgufValueType.String:
            {
                var strings = new byte[count][];
                for (int i = 0; i < count; i++) strings[i] = c.StringBytes(what, i);
                items = strings;
                break;
            }
            default:
            {
                var nested = new GgufValue[count];
                // Elements of an array of arrays carry no type id of their own: each is an array body (type, count, items).
                for (int i = 0; i < count; i++) nested[i] = ReadArray(c, $"{what}[{i}]", depth + 1);
                items = nested;
                break;
            }
        }
        return GgufValue.ArrayFromPayload(elementType, items);
    }

    private static string Text(byte[] utf8) => Encoding.UTF8.GetString(utf8);

    private static bool TryMultiply(long a, long b, out long product)
    {
        product = 0;
        if (a == 0 || b == 0) return true;
        if (a > long.MaxValue / b) return false;
        product = a * b;
        return true;
    }

    /// <summary>Rounds <paramref name="offset"/> up to a multiple of <paramref name="alignment"/> (a power of two).</summary>
    public static long AlignUp(long offset, long alignment) => (offset + alignment - 1) & ~(alignment - 1);
}
