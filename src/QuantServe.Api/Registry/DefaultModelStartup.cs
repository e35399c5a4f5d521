namespace QuantServe.Api.Registry;

/// <summary>Loads the default model in the background so the server accepts connections (and answers /health/live) at once.</summary>
public sealed class DefaultModelStartup(ModelRegistry registry) : BackgroundService
{
    /// <inheritdoc />
    protected override Task ExecuteAsync(CancellationToken stoppingToken) => registry.LoadDefaultAsync(stoppingToken);
}
