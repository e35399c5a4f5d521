using System.Buffers.Binary;
using System.Text.Json;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Formats.Safetensors;

/// <summary>
/// A memory-mapped safetensors file: an unsigned 64-bit little-endian header length N, N bytes of UTF-8 JSON
/// (<c>{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {..}}</c>), then the data section.
/// Opening validates the whole header the way the reference implementation does: every tensor's byte range lies in
/// the data section and equals shape × element size, ranges neither overlap nor leave holes, and they cover the data
/// section exactly. Any violation is a <see cref="ModelLoadException"/> naming the file and the tensor.
/// </summary>
public sealed unsafe class SafetensorsFile : IDisposable
{
    /// <summary>Largest header accepted (the reference implementation's limit), so a corrupt length cannot exhaust memory.</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private readonly Dictionary<string, SafetensorsTensorInfo> _byName = new(StringComparer.Ordinal);
    private readonly List<SafetensorsTensorInfo> _tensors = new();
    private readonly Dictionary<string, string> _metadata = new(StringComparer.Ordinal);

    private SafetensorsFile(MappedFile mapped)
    {
        Mapped = mapped;
    }

    /// <summary>Full path of the file.</summary>
    public string Path => Mapped.Path;

    /// <summary>The memory map (owned by this object).</summary>
    public MappedFile Mapped { get; }

    /// <summary>Offset of the data section in the file (8 + header length).</summary>
    public long DataStart { get; private set; }

    /// <summary>First byte of the data section.</summary>
    public byte* DataPointer => Mapped.Pointer + DataStart;

    /// <summary>The header's <c>__metadata__</c> (string values; other JSON values kept as their JSON text).</summary>
    public IReadOnlyDictionary<string, string> Metadata => _metadata;

    /// <summary>Every tensor, in header order.</summary>
    public IReadOnlyList<SafetensorsTensorInfo> Tensors => _tensors;

    /// <summary>The tensor named <paramref name="name"/>, or null.</summary>
    public SafetensorsTensorInfo? Find(string name) => _byName.GetValueOrDefault(name);

    /// <summary>Maps and validates <paramref name="path"/>.</summary>
    public static SafetensorsFile Open(string path)
    {
        MappedFile mapped;
        try
        {
            mapped = MappedFile.Open(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException && e is not ModelLoadException)
        {
            throw new ModelLoadException(System.IO.Path.GetFullPath(path), $"cannot open safetensors file: {e.Message}", e);
        }
        var file = new SafetensorsFile(mapped);
        try
        {
            file.ReadHeader();
            return file;
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    private void ReadHeader()
    {
        long length = Mapped.Length;
        if (length < 8) Fail($"truncated safetensors file: {length} bytes, the header length alone needs 8");
        ulong rawHeaderLength = BinaryPrimitives.ReadUInt64LittleEndian(Mapped.Span(0, 8));
        if (rawHeaderLength > MaxHeaderBytes)
            Fail($"header length {rawHeaderLength} exceeds the {MaxHeaderBytes / 1_000_000} MB limit (corrupt or not a safetensors file)");
        long headerLength = (long)rawHeaderLength;
        if (8 + headerLength > length)
            Fail($"header length {headerLength} runs beyond the end of the file ({length} bytes; truncated?)");
        if (headerLength < 2) Fail($"header length {headerLength} is too small for a JSON object");
        DataStart = 8 + headerLength;

        var header = Mapped.Span(8, (int)headerLength);
        if (header[0] != (byte)'{') Fail("malformed JSON header: it must start with '{'");
        if (!System.Text.Unicode.Utf8.IsValid(header)) Fail("malformed JSON header: it is not valid UTF-8");
        JsonDocument doc;
        try
        {
            // The format pads the header with trailing spaces, which JSON allows as whitespace.
            doc = JsonDocument.Parse(header.ToArray(), new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            Fail($"malformed JSON header: {e.Message}");
            return;
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) Fail("malformed JSON header: not a JSON object");
            try
            {
                foreach (var property in doc.RootElement.EnumerateObject())
                {
                    if (property.Name == "__metadata__") ReadMetadata(property.Value);
                    else AddTensor(property.Name, property.Value);
                }
            }
            catch (InvalidOperationException e) when (Formats.JsonGuard.IsDecodingFailure(e))
            {
                throw new ModelLoadException(Path, $"malformed JSON header: {e.Message}", e);
            }
        }
        CheckLayout(length - DataStart);
    }

    private void ReadMetadata(JsonElement value)
    {
        if (value.ValueKind == JsonValueKind.Null) return;
        if (value.ValueKind != JsonValueKind.Object) Fail("__metadata__ is not a JSON object");
        foreach (var p in value.EnumerateObject())
            _metadata[p.Name] = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString()! : p.Value.GetRawText();
    }

    private void AddTensor(string name, JsonElement entry)
    {
        if (_byName.ContainsKey(name)) Fail($"tensor '{name}' appears twice in the header");
        if (entry.ValueKind != JsonValueKind.Object) Fail($"tensor '{name}': header entry is not a JSON object");

        if (!entry.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
            Fail($"tensor '{name}': missing or non-string \"dtype\"");
        string dtypeName = dtypeElement.GetString()!;
        var dtype = SafetensorsDTypes.Parse(dtypeName);
        if (dtype is null) Fail($"tensor '{name}': unsupported dtype \"{dtypeName}\"");

        if (!entry.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
            Fail($"tensor '{name}': missing or non-array \"shape\"");
        var shape = new long[shapeElement.GetArrayLength()];
        int i = 0;
        foreach (var d in shapeElement.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long v) || v < 0)
                Fail($"tensor '{name}': shape entry {d.GetRawText()} is not a non-negative integer");
            shape[i++] = d.GetInt64();
        }

        if (!entry.TryGetProperty("data_offsets", out var offsets) || offsets.ValueKind != JsonValueKind.Array || offsets.GetArrayLength() != 2)
            Fail($"tensor '{name}': \"data_offsets\" must be an array of two integers");
        long begin = 0, end = 0;
        int k = 0;
        foreach (var o in offsets.EnumerateArray())
        {
            if (o.ValueKind != JsonValueKind.Number || !o.TryGetInt64(out long v) || v < 0)
                Fail($"tensor '{name}': data_offsets entry {o.GetRawText()} is not a non-negative integer");
            if (k++ == 0) begin = o.GetInt64(); else end = o.GetInt64();
        }
        if (end < begin) Fail($"tensor '{name}': data_offsets [{begin}, {end}) end before they begin");

        long expected;
        try
        {
            long elements = 1;
            foreach (var d in shape) elements = checked(elements * d);
            expected = checked(elements * dtype!.Value.ElementSize());
        }
        catch (OverflowException)
        {
            Fail($"tensor '{name}': shape {SafetensorsTensorInfo.FormatShape(shape)} is too large");
            return;
        }
        if (end - begin != expected)
            Fail($"tensor '{name}': shape {SafetensorsTensorInfo.FormatShape(shape)} of {dtype} needs {expected} bytes but data_offsets [{begin}, {end}) span {end - begin}");

        var info = new SafetensorsTensorInfo(this, name, dtype.Value, shape, begin, end);
        _byName.Add(name, info);
        _tensors.Add(info);
    }

    private void CheckLayout(long dataLength)
    {
        foreach (var t in _tensors)
            if (t.End > dataLength)
                Fail($"tensor '{t.Name}': data_offsets [{t.Begin}, {t.End}) lie beyond the end of the data section ({dataLength} bytes; file truncated?)");

        SafetensorsTensorInfo? previous = null;
        long covered = 0;
        foreach (var t in _tensors.OrderBy(t => t.Begin).ThenBy(t => t.End))
        {
            if (t.Begin < covered)
                Fail($"tensors '{previous!.Name}' [{previous.Begin}, {previous.End}) and '{t.Name}' [{t.Begin}, {t.End}) overlap");
            if (t.Begin > covered)
                Fail($"bytes [{covered}, {t.Begin}) of the data section belong to no tensor (the format allows no holes)");
            covered = t.End;
            previous = t;
        }
        if (covered != dataLength)
            Fail($"the data section is {dataLength} bytes but its tensors end at {covered}");
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private void Fail(string problem) => throw new ModelLoadException(Path, problem);

    /// <inheritdoc />
    public void Dispose() => Mapped.Dispose();
}
