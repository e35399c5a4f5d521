using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Json;

namespace QuantServe.Engine.Formats.Safetensors;

/// <summary>
/// Writes a safetensors file. Tensors are collected with <see cref="Add(string, SafetensorsDType, IReadOnlyList{long}, ReadOnlyMemory{byte})"/>
/// (or a callback that streams the bytes) and written by <see cref="Write"/> to a temporary file beside the target,
/// which is then renamed over it, so readers never see a half-written file. As the format recommends, the header is
/// padded with spaces to a multiple of 8 bytes, and tensors are laid out by element size (largest first), then by
/// name, so every tensor starts at a multiple of its element size with no gaps between tensors.
/// </summary>
public sealed class SafetensorsWriter
{
    private readonly List<Entry> _entries = new();
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);

    private sealed record Entry(string Name, SafetensorsDType DType, long[] Shape, long ByteLength, Action<Stream> WriteData);

    /// <summary>The header's <c>__metadata__</c> (string to string), written when not empty.</summary>
    public Dictionary<string, string> Metadata { get; } = new(StringComparer.Ordinal);

    /// <summary>Number of tensors added so far.</summary>
    public int Count => _entries.Count;

    /// <summary>Adds a tensor whose bytes (row-major, little-endian) are <paramref name="data"/>; the memory must stay unchanged until <see cref="Write"/>.</summary>
    public void Add(string name, SafetensorsDType dtype, IReadOnlyList<long> shape, ReadOnlyMemory<byte> data)
    {
        long expected = ByteLength(name, dtype, shape);
        if (data.Length != expected)
            throw new ArgumentException($"tensor '{name}': shape {SafetensorsTensorInfo.FormatShape(shape)} of {dtype} needs {expected} bytes, got {data.Length}", nameof(data));
        AddEntry(new Entry(name, dtype, shape.ToArray(), expected, s => s.Write(data.Span)));
    }

    /// <summary>Adds an F32 tensor.</summary>
    public void Add(string name, IReadOnlyList<long> shape, ReadOnlyMemory<float> data)
    {
        long expected = ByteLength(name, SafetensorsDType.F32, shape);
        if (data.Length * 4L != expected)
            throw new ArgumentException($"tensor '{name}': shape {SafetensorsTensorInfo.FormatShape(shape)} needs {expected / 4} floats, got {data.Length}", nameof(data));
        AddEntry(new Entry(name, SafetensorsDType.F32, shape.ToArray(), expected, s => s.Write(MemoryMarshal.AsBytes(data.Span))));
    }

    /// <summary>
    /// Adds a tensor whose bytes <paramref name="writeData"/> streams at write time (for data produced on the fly or
    /// read from a memory map); it must write exactly shape × element size bytes.
    /// </summary>
    public void Add(string name, SafetensorsDType dtype, IReadOnlyList<long> shape, Action<Stream> writeData)
    {
        ArgumentNullException.ThrowIfNull(writeData);
        AddEntry(new Entry(name, dtype, shape.ToArray(), ByteLength(name, dtype, shape), writeData));
    }

    /// <summary>
    /// Adds a tensor whose bytes lie in native or memory-mapped memory at <paramref name="data"/> (for example a
    /// <see cref="Tensors.WeightMatrix.Data"/>); the memory must stay valid and unchanged until <see cref="Write"/>.
    /// Tensors of any size are copied in chunks.
    /// </summary>
    public unsafe void Add(string name, SafetensorsDType dtype, IReadOnlyList<long> shape, byte* data)
    {
        if (data == null) throw new ArgumentNullException(nameof(data));
        long length = ByteLength(name, dtype, shape);
        nint address = (nint)data;
        AddEntry(new Entry(name, dtype, shape.ToArray(), length, s =>
        {
            const int chunk = 1 << 30;
            for (long done = 0; done < length; done += chunk)
                s.Write(new ReadOnlySpan<byte>((byte*)address + done, (int)Math.Min(chunk, length - done)));
        }));
    }

    private void AddEntry(Entry entry)
    {
        if (entry.Name.Length == 0 || entry.Name == "__metadata__")
            throw new ArgumentException($"'{entry.Name}' cannot be used as a tensor name", nameof(entry));
        if (!_names.Add(entry.Name)) throw new ArgumentException($"tensor '{entry.Name}' was already added", nameof(entry));
        _entries.Add(entry);
    }

    private static long ByteLength(string name, SafetensorsDType dtype, IReadOnlyList<long> shape)
    {
        long n = dtype.ElementSize();
        foreach (var d in shape)
        {
            if (d < 0) throw new ArgumentException($"tensor '{name}': negative dimension in shape {SafetensorsTensorInfo.FormatShape(shape)}", nameof(shape));
            n = checked(n * d);
        }
        return n;
    }

    /// <summary>Writes the file atomically (temporary file in the same folder, then rename over <paramref name="path"/>).</summary>
    public void Write(string path) => WriteFile(Path.GetFullPath(path), _entries);

    /// <summary>
    /// Writes the tensors into <paramref name="folder"/> in Hugging Face's layout: <c>model.safetensors</c> when they
    /// fit in one file of <paramref name="maxShardBytes"/>, else shards <c>model-0000N-of-0000M.safetensors</c> (tensors
    /// in name order, a new shard whenever the next tensor would overflow the current one) and
    /// <c>model.safetensors.index.json</c>, written last so a reader never finds an index whose shards are incomplete.
    /// Every file is written atomically; returns the paths written.
    /// </summary>
    public IReadOnlyList<string> WriteCheckpoint(string folder, long maxShardBytes = 5_000_000_000)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxShardBytes);
        folder = Path.GetFullPath(folder);
        Directory.CreateDirectory(folder);
        var shards = new List<List<Entry>> { new() };
        long size = 0;
        foreach (var e in _entries.OrderBy(e => e.Name, StringComparer.Ordinal))
        {
            if (size > 0 && size + e.ByteLength > maxShardBytes)
            {
                shards.Add(new());
                size = 0;
            }
            shards[^1].Add(e);
            size += e.ByteLength;
        }
        if (shards.Count == 1)
        {
            string single = Path.Combine(folder, SafetensorsCheckpoint.SingleFileName);
            WriteFile(single, shards[0]);
            return [single];
        }

        var written = new List<string>();
        var weightMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
        for (int i = 0; i < shards.Count; i++)
        {
            string name = $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors";
            string path = Path.Combine(folder, name);
            WriteFile(path, shards[i]);
            written.Add(path);
            foreach (var e in shards[i]) weightMap[e.Name] = name;
        }
        string index = Path.Combine(folder, SafetensorsCheckpoint.IndexFileName);
        WriteAtomically(index, stream =>
        {
            using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true, Encoder = JsonEncoder });
            json.WriteStartObject();
            json.WriteStartObject("metadata");
            json.WriteNumber("total_size", _entries.Sum(e => e.ByteLength));
            json.WriteEndObject();
            json.WriteStartObject("weight_map");
            foreach (var (tensor, shard) in weightMap) json.WriteString(tensor, shard);
            json.WriteEndObject();
            json.WriteEndObject();
        });
        written.Add(index);
        return written;
    }

    private void WriteFile(string path, IEnumerable<Entry> entries)
    {
        var ordered = entries.OrderByDescending(e => e.DType.ElementSize()).ThenBy(e => e.Name, StringComparer.Ordinal).ToList();
        byte[] header = BuildHeader(ordered);
        WriteAtomically(path, stream =>
        {
            Span<byte> length = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
            stream.Write(length);
            stream.Write(header);
            foreach (var e in ordered)
            {
                long before = stream.Position;
                e.WriteData(stream);
                long written = stream.Position - before;
                if (written != e.ByteLength)
                    throw new InvalidOperationException($"tensor '{e.Name}': its writer produced {written} bytes, the shape needs {e.ByteLength}");
            }
        });
    }

    private static readonly System.Text.Encodings.Web.JavaScriptEncoder JsonEncoder =
        System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping;

    /// <summary>Writes through a temporary file beside <paramref name="path"/>, flushed to disk, then renamed over it.</summary>
    private static void WriteAtomically(string path, Action<FileStream> write)
    {
        string temp = Path.Combine(Path.GetDirectoryName(path)!, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            try { File.Delete(temp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }

    private byte[] BuildHeader(List<Entry> ordered)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JsonEncoder }))
        {
            json.WriteStartObject();
            if (Metadata.Count > 0)
            {
                json.WriteStartObject("__metadata__");
                foreach (var (k, v) in Metadata.OrderBy(p => p.Key, StringComparer.Ordinal)) json.WriteString(k, v);
                json.WriteEndObject();
            }
            long offset = 0;
            foreach (var e in ordered)
            {
                json.WriteStartObject(e.Name);
                json.WriteString("dtype", e.DType.ToString());
                json.WriteStartArray("shape");
                foreach (var d in e.Shape) json.WriteNumberValue(d);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + e.ByteLength);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += e.ByteLength;
            }
            json.WriteEndObject();
        }
        int padded = (int)((8 + buffer.Length + 7) / 8 * 8 - 8);
        while (buffer.Length < padded) buffer.WriteByte((byte)' ');
        return buffer.ToArray();
    }
}
