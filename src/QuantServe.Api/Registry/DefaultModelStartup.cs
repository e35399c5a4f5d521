using QuantServe.Api.Serving;

namespace QuantServe.Api.Registry;

/// <summary>Loads the default model in the background so the server accepts connections (and answers /health/live) at once.
/// The scheduler pool is taken first so that, with a serving device, the model is uploaded as part of its load.</summary>
public sealed class DefaultModelStartup(ModelRegistry registry, SchedulerPool schedulers) : BackgroundService
{
    /// <inheritdoc />
    protected override Task ExecuteAsync(CancellationToken stoppingToken)
    {
        GC.KeepAlive(schedulers);
        return registry.LoadDefaultAsync(stoppingToken);
    }
}
