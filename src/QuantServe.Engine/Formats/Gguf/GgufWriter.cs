using System.Buffers.Binary;
using System.Text;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Formats.Gguf;

/// <summary>
/// Builds a GGUF file: metadata (ordered, typed) plus a list of tensors, each with its data given as bytes, as a
/// callback that streams them, or as a tensor of an open <see cref="GgufFile"/>. <see cref="Write"/> lays the file
/// out the way llama.cpp does — header, metadata, tensor infos, zero padding to the alignment, then each tensor's
/// data at the next aligned offset in list order followed by zero padding — so reading a llama.cpp file and writing
/// it back reproduces it byte for byte. The file appears atomically: it is written to a temporary file beside the
/// target and renamed over it only when complete; on any failure the temporary file is deleted.
/// </summary>
public sealed unsafe class GgufWriter
{
    private readonly List<PendingTensor> _tensors = new();
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);

    /// <summary>Starts a file with a copy of <paramref name="metadata"/> (or none) in format version <paramref name="version"/> (2 or 3).</summary>
    public GgufWriter(GgufMetadata? metadata = null, uint version = 3)
    {
        if (version is not (2 or 3)) throw new ArgumentOutOfRangeException(nameof(version), $"GGUF version {version}: only 2 and 3 can be written");
        Metadata = metadata?.Clone("<new GGUF>") ?? new GgufMetadata();
        Version = version;
    }

    /// <summary>A writer that reproduces <paramref name="source"/>: its version, metadata and every tensor in order
    /// (data copied from the source's map when written, so <paramref name="source"/> must stay open until then).</summary>
    public static GgufWriter FromFile(GgufFile source)
    {
        var w = new GgufWriter(source.Metadata, source.Version);
        foreach (var t in source.Tensors) w.AddTensor(t);
        return w;
    }

    /// <summary>The metadata to write, in order. <c>general.alignment</c>, when set, fixes the alignment.</summary>
    public GgufMetadata Metadata { get; }

    /// <summary>Format version written in the header.</summary>
    public uint Version { get; }

    /// <summary>Names of the tensors added so far, in order.</summary>
    public IEnumerable<string> TensorNames => _tensors.Select(t => t.Name);

    /// <summary>Adds a tensor whose bytes are <paramref name="data"/> (exactly the type's size for <paramref name="dims"/>).</summary>
    public void AddTensor(string name, IReadOnlyList<long> dims, GgmlType type, ReadOnlyMemory<byte> data)
    {
        long size = Describe(name, dims, type);
        if (data.Length != size) throw new ArgumentException($"tensor '{name}': {data.Length} bytes given, {type} [{string.Join(", ", dims)}] takes {size}", nameof(data));
        Add(new PendingTensor(name, dims.ToArray(), type, size, s => s.Write(data.Span)));
    }

    /// <summary>Adds a tensor whose bytes <paramref name="writeData"/> streams when the file is written: it must write
    /// exactly the tensor's byte size (more or fewer fails the write). This lets a quantizer produce one tensor at a time.</summary>
    public void AddTensor(string name, IReadOnlyList<long> dims, GgmlType type, Action<Stream> writeData)
    {
        ArgumentNullException.ThrowIfNull(writeData);
        long size = Describe(name, dims, type);
        Add(new PendingTensor(name, dims.ToArray(), type, size, writeData));
    }

    /// <summary>Adds a tensor of an open file under its own name (or <paramref name="name"/>), copying its bytes at write time.</summary>
    public void AddTensor(GgufTensorInfo source, string? name = null)
    {
        long size = Describe(name ?? source.Name, source.Dimensions, source.Type);
        // Data is re-read at write time so that a source closed in between fails cleanly instead of reading unmapped memory.
        Add(new PendingTensor(name ?? source.Name, source.Dimensions.ToArray(), source.Type, size, s => CopyNative(s, source.Data, size)));
    }

    /// <summary>Writes the file to <paramref name="path"/> atomically (temporary file, then rename).</summary>
    public void Write(string path)
    {
        string full = Path.GetFullPath(path);
        string temp = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var fs = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                WriteTo(fs);
                fs.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(temp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }

    /// <summary>Writes the whole file to <paramref name="stream"/> (not atomic; <see cref="Write"/> is).</summary>
    public void WriteTo(Stream stream)
    {
        int alignment = Alignment();
        Span<byte> buf = stackalloc byte[8];
        BinaryPrimitives.WriteUInt32LittleEndian(buf, GgufFile.Magic);
        stream.Write(buf[..4]);
        U32(stream, Version);
        U64(stream, (ulong)_tensors.Count);
        U64(stream, (ulong)Metadata.Count);
        long position = 24;
        foreach (var (key, value) in Metadata)
        {
            position += Str(stream, Encoding.UTF8.GetBytes(key));
            U32(stream, (uint)value.Type);
            value.WriteTo(stream);
            position += 4 + value.EncodedSize();
        }

        long offset = 0;
        var offsets = new long[_tensors.Count];
        for (int i = 0; i < _tensors.Count; i++)
        {
            var t = _tensors[i];
            offsets[i] = offset;
            position += Str(stream, Encoding.UTF8.GetBytes(t.Name));
            U32(stream, (uint)t.Dims.Length);
            foreach (long d in t.Dims) U64(stream, (ulong)d);
            U32(stream, (uint)t.Type);
            U64(stream, (ulong)offset);
            position += 4 + 8L * t.Dims.Length + 4 + 8;
            offset = GgufFile.AlignUp(offset + t.Size, alignment);
        }
        Pad(stream, GgufFile.AlignUp(position, alignment) - position);

        for (int i = 0; i < _tensors.Count; i++)
        {
            var t = _tensors[i];
            var counted = new TensorDataStream(stream, t.Name, t.Size);
            t.WriteData(counted);
            if (counted.Written != t.Size)
                throw new InvalidOperationException($"tensor '{t.Name}': its data writer produced {counted.Written} bytes, expected {t.Size}");
            Pad(stream, GgufFile.AlignUp(t.Size, alignment) - t.Size);
        }
    }

    private int Alignment()
    {
        var v = Metadata.Find("general.alignment");
        if (v is null) return GgufFile.DefaultAlignment;
        if (!v.TryGetInteger(out long a) || a <= 0 || a > 1 << 30 || (a & (a - 1)) != 0)
            throw new InvalidOperationException($"general.alignment must be a power of two (uint32), got {GgufMetadata.TypeName(v)} {v}");
        return (int)a;
    }

    private long Describe(string name, IReadOnlyList<long> dims, GgmlType type)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (_names.Contains(name)) throw new ArgumentException($"tensor '{name}' was already added", nameof(name));
        if (dims.Count > GgufFile.MaxDimensions) throw new ArgumentException($"tensor '{name}': {dims.Count} dimensions, GGUF allows {GgufFile.MaxDimensions}", nameof(dims));
        var g = GgmlTypeInfo.Geometry(type) ?? throw new ArgumentException($"tensor '{name}': unknown ggml type {(uint)type}", nameof(type));
        long elements = 1;
        foreach (long d in dims)
        {
            if (d < 0) throw new ArgumentException($"tensor '{name}': negative dimension {d}", nameof(dims));
            elements = checked(elements * d);
        }
        long cols = dims.Count > 0 ? dims[0] : 1;
        if (cols % g.BlockSize != 0) throw new ArgumentException($"tensor '{name}': row length {cols} is not a multiple of the {type} block size {g.BlockSize}", nameof(dims));
        return checked(elements / g.BlockSize * g.TypeSize);
    }

    private void Add(PendingTensor t)
    {
        _names.Add(t.Name);
        _tensors.Add(t);
    }

    private static void CopyNative(Stream s, byte* data, long size)
    {
        const int chunk = 1 << 30;
        for (long done = 0; done < size; done += chunk)
            s.Write(new ReadOnlySpan<byte>(data + done, (int)Math.Min(chunk, size - done)));
    }

    private static void U32(Stream s, uint v)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, v);
        s.Write(b);
    }

    private static void U64(Stream s, ulong v)
    {
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, v);
        s.Write(b);
    }

    private static long Str(Stream s, byte[] utf8)
    {
        U64(s, (ulong)utf8.Length);
        s.Write(utf8);
        return 8L + utf8.Length;
    }

    private static void Pad(Stream s, long count)
    {
        Span<byte> zeros = stackalloc byte[64];
        zeros.Clear();
        while (count > 0)
        {
            int n = (int)Math.Min(count, zeros.Length);
            s.Write(zeros[..n]);
            count -= n;
        }
    }

    private sealed record PendingTensor(string Name, long[] Dims, GgmlType Type, long Size, Action<Stream> WriteData);
}
