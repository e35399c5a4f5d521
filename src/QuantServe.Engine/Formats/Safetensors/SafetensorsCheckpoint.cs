using System.Text.Json;
using QuantServe.Engine.Models;
using QuantServe.Engine.Formats;

namespace QuantServe.Engine.Formats.Safetensors;

/// <summary>
/// The safetensors weights of a model folder: a single <c>model.safetensors</c>, or the shards named by
/// <c>model.safetensors.index.json</c>'s <c>weight_map</c>. Every shard is mapped and validated on open; tensors are
/// looked up by name across shards.
/// </summary>
public sealed class SafetensorsCheckpoint : IDisposable
{
    /// <summary>File name of a single-file checkpoint.</summary>
    public const string SingleFileName = "model.safetensors";

    /// <summary>File name of the shard index.</summary>
    public const string IndexFileName = "model.safetensors.index.json";

    private readonly List<SafetensorsFile> _files;
    private readonly Dictionary<string, SafetensorsTensorInfo> _tensors;

    private SafetensorsCheckpoint(string folder, List<SafetensorsFile> files, Dictionary<string, SafetensorsTensorInfo> tensors)
    {
        Folder = folder;
        _files = files;
        _tensors = tensors;
    }

    /// <summary>The model folder.</summary>
    public string Folder { get; }

    /// <summary>The mapped files (one, or one per shard in index order).</summary>
    public IReadOnlyList<SafetensorsFile> Files => _files;

    /// <summary>Every tensor by name.</summary>
    public IReadOnlyDictionary<string, SafetensorsTensorInfo> Tensors => _tensors;

    /// <summary>The tensor named <paramref name="name"/>, or null.</summary>
    public SafetensorsTensorInfo? Find(string name) => _tensors.GetValueOrDefault(name);

    /// <summary>Whether <paramref name="folder"/> holds safetensors weights in Hugging Face's layout.</summary>
    public static bool Exists(string folder) =>
        File.Exists(Path.Combine(folder, IndexFileName)) || File.Exists(Path.Combine(folder, SingleFileName));

    /// <summary>Opens the weights of <paramref name="folder"/> (the index when present, else model.safetensors).</summary>
    public static SafetensorsCheckpoint Open(string folder)
    {
        folder = Path.GetFullPath(folder);
        string index = Path.Combine(folder, IndexFileName);
        if (File.Exists(index)) return OpenSharded(folder, index);
        string single = Path.Combine(folder, SingleFileName);
        if (File.Exists(single)) return FromFiles(folder, [single], null);
        string hint = Directory.Exists(folder) && Directory.EnumerateFiles(folder, "*.bin").Any()
            ? " (PyTorch .bin weights are not supported: convert them to safetensors)" : "";
        throw new ModelLoadException(folder, $"no {SingleFileName} or {IndexFileName} in the folder{hint}");
    }

    private static SafetensorsCheckpoint OpenSharded(string folder, string index)
    {
        var weightMap = ReadWeightMap(index);
        var shardNames = weightMap.Values.Distinct(StringComparer.Ordinal).ToList();
        var shardPaths = new List<string>();
        foreach (var shard in shardNames)
        {
            if (shard.Length == 0 || Path.IsPathRooted(shard) || shard.Contains('/') || shard.Contains('\\') || shard == "." || shard == "..")
                throw new ModelLoadException(index, $"weight_map names shard \"{shard}\", which is not a plain file name in the model folder");
            string path = Path.Combine(folder, shard);
            if (!File.Exists(path))
                throw new ModelLoadException(index, $"shard {shard} named by the weight_map is missing (expected at {path})");
            shardPaths.Add(path);
        }
        return FromFiles(folder, shardPaths, (index, weightMap));
    }

    private static Dictionary<string, string> ReadWeightMap(string index)
    {
        byte[] bytes;
        try { bytes = File.ReadAllBytes(index); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelLoadException(index, $"cannot read: {e.Message}", e);
        }
        if (!System.Text.Unicode.Utf8.IsValid(bytes)) throw new ModelLoadException(index, "malformed JSON: the file is not valid UTF-8");
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(bytes);
        }
        catch (JsonException e)
        {
            throw new ModelLoadException(index, $"malformed JSON: {e.Message}", e);
        }
        using (doc)
            return JsonGuard.Read(index, () => WeightMap(index, doc));
    }

    private static Dictionary<string, string> WeightMap(string index, JsonDocument doc)
    {
        if (doc.RootElement.ValueKind != JsonValueKind.Object
            || !doc.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
            throw new ModelLoadException(index, "no \"weight_map\" object");
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var p in map.EnumerateObject())
        {
            if (p.Value.ValueKind != JsonValueKind.String)
                throw new ModelLoadException(index, $"weight_map entry for '{p.Name}' is not a file name string");
            result[p.Name] = p.Value.GetString()!;
        }
        if (result.Count == 0) throw new ModelLoadException(index, "the weight_map is empty");
        return result;
    }

    private static SafetensorsCheckpoint FromFiles(string folder, IReadOnlyList<string> paths, (string Path, Dictionary<string, string> Map)? index)
    {
        var files = new List<SafetensorsFile>();
        try
        {
            var tensors = new Dictionary<string, SafetensorsTensorInfo>(StringComparer.Ordinal);
            foreach (var path in paths)
            {
                var file = SafetensorsFile.Open(path);
                files.Add(file);
                foreach (var t in file.Tensors)
                {
                    if (tensors.TryGetValue(t.Name, out var other))
                        throw new ModelLoadException(file.Path, $"tensor '{t.Name}' is also stored in {Path.GetFileName(other.File.Path)}");
                    tensors.Add(t.Name, t);
                }
            }
            if (index is { } ix)
            {
                foreach (var (name, shard) in ix.Map)
                {
                    if (!tensors.TryGetValue(name, out var t))
                        throw new ModelLoadException(Path.Combine(folder, shard), $"tensor '{name}', which {IndexFileName} places in this shard, is not in it");
                    if (!string.Equals(Path.GetFileName(t.File.Path), shard, StringComparison.Ordinal))
                        throw new ModelLoadException(ix.Path, $"weight_map places '{name}' in {shard} but it is stored in {Path.GetFileName(t.File.Path)}");
                }
            }
            return new SafetensorsCheckpoint(folder, files, tensors);
        }
        catch
        {
            foreach (var f in files) f.Dispose();
            throw;
        }
    }

    /// <summary>Hands the mapped files to a new owner (for example a <see cref="LoadedModel"/>); this object then disposes nothing.</summary>
    public IReadOnlyList<IDisposable> DetachFiles()
    {
        var result = _files.ToList<IDisposable>();
        _files.Clear();
        return result;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var f in _files) f.Dispose();
        _files.Clear();
    }
}
