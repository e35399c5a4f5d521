using QuantServe.Engine.Formats.Safetensors;

namespace QuantServe.Engine.Models;

/// <summary>
/// The models of a models directory, for the server to list and load by id. Every entry of the directory is a
/// candidate: a <c>.gguf</c> file (id = file name without extension), or a folder holding a Hugging Face model
/// (config.json and safetensors weights) or a llama2.c checkpoint with its tok*.bin tokenizer (id = folder name).
/// Anything else is skipped with a reason. Scanning reads at most a file's first four bytes; no weights are loaded.
/// </summary>
public sealed class ModelCatalog
{
    private readonly Dictionary<string, ModelDescriptor> _byId;

    private ModelCatalog(string directory, List<ModelDescriptor> models, List<SkippedModelEntry> skipped)
    {
        Directory = directory;
        Models = models;
        Skipped = skipped;
        _byId = models.ToDictionary(m => m.Id, StringComparer.Ordinal);
    }

    /// <summary>The scanned directory (full path).</summary>
    public string Directory { get; }

    /// <summary>The models found, ordered by id.</summary>
    public IReadOnlyList<ModelDescriptor> Models { get; }

    /// <summary>Entries that are not models, with the reason.</summary>
    public IReadOnlyList<SkippedModelEntry> Skipped { get; }

    /// <summary>The model with id <paramref name="id"/> (exact, case-sensitive), or null.</summary>
    public ModelDescriptor? Find(string id) => _byId.GetValueOrDefault(id);

    /// <summary>
    /// Whether <paramref name="id"/> can name a model: non-empty, at most 200 characters, no path separator, no
    /// <c>..</c>, no control character, no leading dot and no leading or trailing white space. <paramref name="problem"/>
    /// says what is wrong otherwise.
    /// </summary>
    public static bool IsValidId(string id, out string? problem)
    {
        problem = id switch
        {
            null or "" => "the id is empty",
            { Length: > 200 } => "the id is longer than 200 characters",
            _ when id.Contains('/') || id.Contains('\\') => "the id contains a path separator",
            _ when id.Contains("..", StringComparison.Ordinal) => "the id contains \"..\"",
            _ when id.Any(char.IsControl) => "the id contains a control character",
            _ when id.StartsWith('.') => "the id starts with a dot",
            _ when id.Trim() != id => "the id starts or ends with white space",
            _ => null,
        };
        return problem is null;
    }

    /// <summary>Scans <paramref name="directory"/>; throws <see cref="ModelLoadException"/> only when the directory itself cannot be read.</summary>
    public static ModelCatalog Scan(string directory)
    {
        directory = Path.GetFullPath(directory);
        if (!System.IO.Directory.Exists(directory)) throw new ModelLoadException(directory, "the models directory does not exist");
        List<string> entries;
        try
        {
            entries = System.IO.Directory.EnumerateFileSystemEntries(directory).Order(StringComparer.Ordinal).ToList();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelLoadException(directory, $"cannot list the models directory: {e.Message}", e);
        }

        var models = new List<ModelDescriptor>();
        var skipped = new List<SkippedModelEntry>();
        var taken = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var entry in entries)
        {
            string? reason;
            ModelDescriptor? model;
            try
            {
                (model, reason) = Describe(entry);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                (model, reason) = (null, $"cannot be read: {e.Message}");
            }
            if (model is { Id: var id } && taken.TryGetValue(id, out var other))
                (model, reason) = (null, $"its id \"{id}\" is already used by {other}");
            if (model is null)
            {
                skipped.Add(new SkippedModelEntry(entry, reason!));
                continue;
            }
            taken.Add(model.Id, entry);
            models.Add(model);
        }
        models.Sort((a, b) => string.CompareOrdinal(a.Id, b.Id));
        return new ModelCatalog(directory, models, skipped);
    }

    private static (ModelDescriptor?, string?) Describe(string entry)
    {
        string name = Path.GetFileName(entry);
        if (name.StartsWith('.')) return (null, "hidden entry");
        if (File.Exists(entry)) return DescribeFile(entry, name);
        if (!System.IO.Directory.Exists(entry)) return (null, "neither a file nor a folder (a broken link?)");

        string? format = ModelLoader.DetectFormat(entry);
        if (format is null)
        {
            int ggufs = System.IO.Directory.EnumerateFiles(entry, "*.gguf").Count();
            return (null, ggufs > 0
                ? $"the folder holds {ggufs} .gguf file(s), which are models only directly in the models directory (move or link them there)"
                : "the folder holds neither a Hugging Face model (config.json) nor a llama2.c checkpoint with a tok*.bin tokenizer");
        }
        if (format == "safetensors" && !SafetensorsCheckpoint.Exists(entry))
            return (null, $"the folder has config.json but no {SafetensorsCheckpoint.SingleFileName} or {SafetensorsCheckpoint.IndexFileName}");
        if (!IsValidId(name, out var problem)) return (null, $"cannot be served: {problem}");
        return (new ModelDescriptor(name, entry, format, FolderBytes(entry)), null);
    }

    private static (ModelDescriptor?, string?) DescribeFile(string path, string name)
    {
        if (!name.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase))
            return (null, "not a .gguf file (Hugging Face and llama2.c models must each be in their own folder)");
        string id = name[..^".gguf".Length];
        if (!IsValidId(id, out var problem)) return (null, $"cannot be served: {problem}");
        Span<byte> magic = stackalloc byte[4];
        long length;
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1))
        {
            length = stream.Length;
            if (stream.ReadAtLeast(magic, 4, throwOnEndOfStream: false) < 4 || !magic.SequenceEqual("GGUF"u8))
                return (null, "not a GGUF file (it does not start with the GGUF magic)");
        }
        return (new ModelDescriptor(id, path, "gguf", length), null);
    }

    /// <summary>Bytes of the folder's files (not subfolders: a model's weights lie at its top level), following links.</summary>
    private static long FolderBytes(string folder)
    {
        long total = 0;
        foreach (var file in new DirectoryInfo(folder).EnumerateFiles())
        {
            try
            {
                var target = file.LinkTarget is null ? file : file.ResolveLinkTarget(returnFinalTarget: true) as FileInfo;
                if (target is { Exists: true }) total += target.Length;
            }
            catch (IOException) { }
        }
        return total;
    }
}
