using Microsoft.Extensions.Options;
using QuantServe.Api.Hosting;
using QuantServe.Api.OpenAi;
using QuantServe.Engine.Models;

namespace QuantServe.Api.Registry;

/// <summary>
/// Every model the server knows: the configured default (loaded at startup, never unloaded) and each entry of the
/// models directory (loaded on first use). Loaded models beyond the memory budget are unloaded least-recently-used
/// first, but only once no request holds a <see cref="ModelLease"/> on them.
/// </summary>
public sealed class ModelRegistry : IDisposable
{
    private readonly QuantServeOptions _options;
    private readonly ILogger<ModelRegistry> _log;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, ModelEntry> _entries = new(StringComparer.Ordinal);
    private readonly HashSet<string> _reported = new(StringComparer.Ordinal);
    private long _clock;
    private bool _disposed;

    /// <summary>Creates the registry and discovers the models (nothing is loaded yet).</summary>
    public ModelRegistry(IOptions<QuantServeOptions> options, ILogger<ModelRegistry> log)
    {
        _options = options.Value;
        _log = log;
        string path = _options.ResolveDefaultModelPath();
        DefaultModelId = IdFor(path);
        _entries[DefaultModelId] = Describe(DefaultModelId, path, isDefault: true);
        Rescan();
    }

    /// <summary>Raised (outside the registry's lock, on the loading thread) when a model's weights have loaded, before the
    /// model is handed to requests; a handler that throws fails the load. The serving device uploads the model here.</summary>
    public event Action<string, LoadedModel>? Loaded;

    /// <summary>Raised (under the registry's lock) just before a model's weights are released.</summary>
    public event Action<LoadedModel>? Unloading;

    /// <summary>Id of the default model.</summary>
    public string DefaultModelId { get; }

    /// <summary>Whether the default model is loaded (the readiness condition).</summary>
    public bool IsReady => _entries[DefaultModelId].Model is not null;

    /// <summary>Why the default model failed to load, if it did.</summary>
    public string? DefaultModelError { get; private set; }

    /// <summary>Loads the default model; called once by the startup service.</summary>
    public async Task LoadDefaultAsync(CancellationToken cancellation)
    {
        try
        {
            using var lease = await AcquireAsync(DefaultModelId, cancellation);
            _log.LogInformation("Default model {Model} loaded from {Path}: {Parameters} parameters, {Bytes} bytes, {Precision}",
                lease.Entry.Id, lease.Entry.Path, lease.Model.ParameterCount, lease.Model.WeightBytes, lease.Model.Precision);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            DefaultModelError = e.Message;
            _log.LogError(e, "Default model {Model} failed to load", DefaultModelId);
        }
    }

    /// <summary>All models, default first, then by id.</summary>
    public IReadOnlyList<ModelEntry> List()
    {
        Rescan();
        lock (_gate)
            return _entries.Values.OrderByDescending(e => e.IsDefault).ThenBy(e => e.Id, StringComparer.Ordinal).ToList();
    }

    /// <summary>The entry with <paramref name="id"/>, or null.</summary>
    public ModelEntry? Find(string id)
    {
        lock (_gate)
            if (_entries.TryGetValue(id, out var e)) return e;
        Rescan();
        lock (_gate)
            return _entries.GetValueOrDefault(id);
    }

    /// <summary>Leases model <paramref name="id"/>, loading it first if needed. Unknown ids → 404 (OpenAI's model_not_found).</summary>
    public async Task<ModelLease> AcquireAsync(string id, CancellationToken cancellation)
    {
        var entry = Find(id) ?? throw OpenAiException.ModelNotFound(id);
        while (true)
        {
            Task<LoadedModel> loading;
            lock (_gate)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                if (entry.Model is { } ready)
                {
                    entry.Leases++;
                    entry.LastUsed = ++_clock;
                    return new ModelLease(this, entry, ready);
                }
                entry.Loading ??= Task.Run(() => Load(entry), CancellationToken.None);
                loading = entry.Loading;
            }
            await loading.WaitAsync(cancellation);
        }
    }

    private LoadedModel Load(ModelEntry entry)
    {
        var started = System.Diagnostics.Stopwatch.StartNew();
        LoadedModel model;
        try
        {
            model = ModelLoader.Load(entry.Path);
            try
            {
                Loaded?.Invoke(entry.Id, model);
            }
            catch
            {
                Unloading?.Invoke(model);
                model.Dispose();
                throw;
            }
        }
        catch (Exception e)
        {
            lock (_gate) entry.Loading = null;
            // Every load failure names the model's file, whatever layer it came from.
            if (e is ModelLoadException) throw;
            throw new ModelLoadException(entry.Path, e.Message, e);
        }
        lock (_gate)
        {
            entry.Model = model;
            entry.Loading = null;
            entry.LastUsed = ++_clock;
            EvictOverBudget(entry);
        }
        _log.LogInformation("Loaded model {Model} ({Format}, {Bytes} bytes) in {Ms} ms",
            entry.Id, model.SourceFormat, model.WeightBytes, started.ElapsedMilliseconds);
        return model;
    }

    internal void Release(ModelEntry entry)
    {
        lock (_gate)
        {
            entry.Leases--;
            EvictOverBudget(keep: null);
        }
    }

    /// <summary>Unloads idle models, least recently used first, until the loaded weights fit the budget.</summary>
    private void EvictOverBudget(ModelEntry? keep)
    {
        long budget = _options.ModelMemoryBudgetBytes;
        if (budget <= 0) return;
        long loaded = _entries.Values.Where(e => e.Model is not null).Sum(e => e.Model!.WeightBytes);
        foreach (var victim in _entries.Values
                     .Where(e => e.Model is not null && e.Leases == 0 && !e.IsDefault && e != keep)
                     .OrderBy(e => e.LastUsed).ToList())
        {
            if (loaded <= budget) break;
            loaded -= victim.Model!.WeightBytes;
            Unloading?.Invoke(victim.Model);
            victim.Model.Dispose();
            victim.Model = null;
            _log.LogInformation("Unloaded model {Model} to stay within the {Budget}-byte model budget", victim.Id, budget);
        }
    }

    /// <summary>Adds models that appeared in the models directory (entries never disappear while the server runs).</summary>
    private void Rescan()
    {
        Scan(_options.ModelsDirectory);
        // Models produced by quantization jobs: a second models directory that may not exist yet.
        string produced = _options.ResolveProducedModelsDirectory();
        if (Directory.Exists(produced)) Scan(produced);
    }

    /// <summary>Makes a model just written into a models directory servable at once (the next lookup would find it too).
    /// When the id was already loaded from a file since replaced, the idle old weights are released so the next request
    /// loads the new file.</summary>
    public ModelEntry? Register(string id)
    {
        Rescan();
        lock (_gate)
        {
            var entry = _entries.GetValueOrDefault(id);
            if (entry is { Model: { } old, Leases: 0, IsDefault: false })
            {
                Unloading?.Invoke(old);
                old.Dispose();
                entry.Model = null;
            }
            return entry;
        }
    }

    private void Scan(string? dir)
    {
        if (string.IsNullOrWhiteSpace(dir)) return;
        ModelCatalog catalog;
        try
        {
            catalog = ModelCatalog.Scan(dir);
        }
        catch (ModelLoadException e)
        {
            lock (_gate)
                if (_reported.Add(dir)) _log.LogWarning("Models directory unusable: {Problem}", e.Message);
            return;
        }
        foreach (var skipped in catalog.Skipped)
            lock (_gate)
                if (_reported.Add(skipped.Path)) _log.LogInformation("Ignoring {Path}: {Reason}", skipped.Path, skipped.Reason);
        foreach (var d in catalog.Models)
        {
            lock (_gate)
                if (_entries.ContainsKey(d.Id)) continue;
            if (!_options.AllowLinksOutsideModelsDirectory && LinkOutside(dir, d.Path) is { } link)
            {
                lock (_gate)
                    if (_reported.Add(d.Path))
                        _log.LogWarning("Ignoring {Path}: {Link} is a link out of the models directory (QuantServe:AllowLinksOutsideModelsDirectory)", d.Path, link);
                continue;
            }
            var entry = new ModelEntry(d.Id, d.Path, d.Format, d.FileBytes, LastChange(d.Path), isDefault: false);
            lock (_gate) _entries.TryAdd(d.Id, entry);
        }
    }

    private static string? LinkOutside(string dir, string path)
    {
        try { return Security.PathGuard.LinkOutside(dir, path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return path; }
    }

    private static DateTimeOffset LastChange(string path)
    {
        if (File.Exists(path)) return File.GetLastWriteTimeUtc(path);
        if (!Directory.Exists(path)) return DateTimeOffset.UnixEpoch;
        var times = new DirectoryInfo(path).EnumerateFiles().Select(f => f.LastWriteTimeUtc).ToList();
        return times.Count > 0 ? times.Max() : Directory.GetLastWriteTimeUtc(path);
    }

    private static string IdFor(string path)
    {
        string trimmed = Path.TrimEndingDirectorySeparator(path);
        return File.Exists(trimmed) && trimmed.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase)
            ? Path.GetFileNameWithoutExtension(trimmed)
            : Path.GetFileName(trimmed);
    }

    private static ModelEntry Describe(string id, string path, bool isDefault)
    {
        long bytes = 0;
        DateTimeOffset created = DateTimeOffset.UnixEpoch;
        if (File.Exists(path))
        {
            var fi = new FileInfo(path);
            bytes = fi.Length;
            created = fi.LastWriteTimeUtc;
        }
        else if (Directory.Exists(path))
        {
            foreach (var fi in new DirectoryInfo(path).EnumerateFiles())
            {
                bytes += fi.Length;
                if (fi.LastWriteTimeUtc > created) created = fi.LastWriteTimeUtc;
            }
        }
        return new ModelEntry(id, path, ModelLoader.DetectFormat(path) ?? "unknown", bytes, created, isDefault);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        lock (_gate)
        {
            _disposed = true;
            foreach (var e in _entries.Values)
            {
                e.Model?.Dispose();
                e.Model = null;
            }
        }
    }
}
