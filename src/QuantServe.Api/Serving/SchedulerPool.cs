using Microsoft.Extensions.Options;
using QuantServe.Api.Hosting;
using QuantServe.Api.Registry;
using QuantServe.Api.Telemetry;
using QuantServe.Engine.Kernels.Cpu;
using QuantServe.Engine.Models;

namespace QuantServe.Api.Serving;

/// <summary>One <see cref="BatchScheduler"/> per loaded model, stopped when the registry unloads the model. On the CPU a
/// scheduler is created on first use; with a serving device it is created as the registry loads the model, so the upload
/// happens before the model is reported loaded (and ready).</summary>
public sealed class SchedulerPool : IDisposable
{
    private readonly QuantServeOptions _options;
    private readonly QuantServeTelemetry _telemetry;
    private readonly ILoggerFactory _logs;
    private readonly Lock _gate = new();
    private readonly Dictionary<LoadedModel, BatchScheduler> _schedulers = new(ReferenceEqualityComparer.Instance);
    private readonly WorkerPool? _workers;
    private readonly ServingDevice _device;

    /// <summary>Creates the pool and subscribes to model loads and unloads.</summary>
    public SchedulerPool(IOptions<QuantServeOptions> options, QuantServeTelemetry telemetry, ILoggerFactory logs, ModelRegistry registry, ServingDevice device)
    {
        _options = options.Value;
        _telemetry = telemetry;
        _logs = logs;
        _device = device;
        registry.Unloading += Remove;
        if (device.Backend is not null) registry.Loaded += (id, model) => For(model, id);
        // A configured thread count gets its own kernel pool; otherwise the engine's shared one (a thread per core).
        if (_options.Threads > 0) _workers = new WorkerPool(_options.Threads);
    }

    /// <summary>The scheduler of the leased model.</summary>
    public BatchScheduler For(ModelLease lease) => For(lease.Model, lease.Entry.Id);

    private BatchScheduler For(LoadedModel model, string id)
    {
        lock (_gate)
        {
            if (!_schedulers.TryGetValue(model, out var s))
            {
                var o = _options;
                int maxBatch = Math.Max(1, o.MaxBatch);
                // A device step takes every running sequence's chunk at once, so its pieces hold at least MaxBatch tokens.
                int batchTokens = Math.Max(Math.Max(1, o.MaxBatchTokens), maxBatch);
                var engine = _device.CreateEngine(model, id, batchTokens, _workers);
                s = new BatchScheduler(model, engine, id,
                    new SchedulerOptions(maxBatch, Math.Max(2, o.MaxContext), Math.Max(0, o.MaxQueue), batchTokens, Math.Max(1, o.RetryAfterSeconds), Math.Max(0, o.KvCacheBudgetBytes)),
                    _telemetry, _logs.CreateLogger<BatchScheduler>());
                _schedulers[model] = s;
            }
            return s;
        }
    }

    private void Remove(LoadedModel model)
    {
        BatchScheduler? s;
        lock (_gate)
            if (_schedulers.Remove(model, out s) == false) return;
        s?.Dispose();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        List<BatchScheduler> all;
        lock (_gate)
        {
            all = [.. _schedulers.Values];
            _schedulers.Clear();
        }
        foreach (var s in all) s.Dispose();
        _workers?.Dispose();
    }

    /// <summary>Where <paramref name="model"/> runs: its scheduler's device, else where a scheduler would put it.</summary>
    public string DeviceOf(LoadedModel model) => Find(model)?.Device ?? _device.Name;

    /// <summary>The scheduler already running for <paramref name="model"/>, or null.</summary>
    public BatchScheduler? Find(LoadedModel model)
    {
        lock (_gate) return _schedulers.GetValueOrDefault(model);
    }
}
