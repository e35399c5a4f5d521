using Microsoft.Extensions.Options;
using QuantServe.Api.Hosting;
using QuantServe.Api.Registry;
using QuantServe.Api.Telemetry;
using QuantServe.Engine.Kernels.Cpu;
using QuantServe.Engine.Models;

namespace QuantServe.Api.Serving;

/// <summary>One <see cref="BatchScheduler"/> per loaded model, created on first use and stopped when the registry unloads the model.</summary>
public sealed class SchedulerPool : IDisposable
{
    private readonly QuantServeOptions _options;
    private readonly QuantServeTelemetry _telemetry;
    private readonly ILoggerFactory _logs;
    private readonly Lock _gate = new();
    private readonly Dictionary<LoadedModel, BatchScheduler> _schedulers = new(ReferenceEqualityComparer.Instance);
    private readonly WorkerPool? _workers;

    /// <summary>Creates the pool and subscribes to model unloads.</summary>
    public SchedulerPool(IOptions<QuantServeOptions> options, QuantServeTelemetry telemetry, ILoggerFactory logs, ModelRegistry registry)
    {
        _options = options.Value;
        _telemetry = telemetry;
        _logs = logs;
        registry.Unloading += Remove;
        // A configured thread count gets its own kernel pool; otherwise the engine's shared one (a thread per core).
        if (_options.Threads > 0) _workers = new WorkerPool(_options.Threads);
    }

    /// <summary>The scheduler of the leased model.</summary>
    public BatchScheduler For(ModelLease lease)
    {
        lock (_gate)
        {
            if (!_schedulers.TryGetValue(lease.Model, out var s))
            {
                var o = _options;
                s = new BatchScheduler(lease.Model, lease.Entry.Id,
                    new SchedulerOptions(Math.Max(1, o.MaxBatch), Math.Max(2, o.MaxContext), Math.Max(0, o.MaxQueue), Math.Max(1, o.MaxBatchTokens), Math.Max(1, o.RetryAfterSeconds)),
                    _telemetry, _logs.CreateLogger<BatchScheduler>(), _workers);
                _schedulers[lease.Model] = s;
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

    /// <summary>The scheduler already running for <paramref name="model"/>, or null.</summary>
    public BatchScheduler? Find(LoadedModel model)
    {
        lock (_gate) return _schedulers.GetValueOrDefault(model);
    }
}
