using QuantServe.Engine.Models;

namespace QuantServe.Api.Registry;

/// <summary>A model the server can serve: where it is, and — while loaded — its weights. Guarded by <see cref="ModelRegistry"/>.</summary>
public sealed class ModelEntry
{
    internal ModelEntry(string id, string path, string format, long fileBytes, DateTimeOffset created, bool isDefault)
    {
        Id = id;
        Path = path;
        Format = format;
        FileBytes = fileBytes;
        Created = created;
        IsDefault = isDefault;
    }

    /// <summary>Id clients pass as <c>model</c>.</summary>
    public string Id { get; }

    /// <summary>File or folder.</summary>
    public string Path { get; }

    /// <summary>Source format as detected without loading.</summary>
    public string Format { get; }

    /// <summary>Bytes on disk.</summary>
    public long FileBytes { get; }

    /// <summary>Last change of the model's files.</summary>
    public DateTimeOffset Created { get; }

    /// <summary>Whether this is the configured default model (kept loaded).</summary>
    public bool IsDefault { get; }

    /// <summary>The loaded model, or null.</summary>
    public LoadedModel? Model { get; internal set; }

    internal Task<LoadedModel>? Loading { get; set; }
    internal int Leases { get; set; }
    internal long LastUsed { get; set; }
}

/// <summary>Use of a loaded model; the registry will not unload it until every lease is disposed.</summary>
public sealed class ModelLease : IDisposable
{
    private readonly ModelRegistry _registry;
    private int _disposed;

    internal ModelLease(ModelRegistry registry, ModelEntry entry, LoadedModel model)
    {
        _registry = registry;
        Entry = entry;
        Model = model;
    }

    /// <summary>The model's registry entry.</summary>
    public ModelEntry Entry { get; }

    /// <summary>The loaded model.</summary>
    public LoadedModel Model { get; }

    /// <inheritdoc />
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0) _registry.Release(Entry);
    }
}
