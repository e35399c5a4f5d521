using Microsoft.AspNetCore.Http.HttpResults;
using QuantServe.Api.Registry;
using QuantServe.Api.Serving;

namespace QuantServe.Api.Health;

/// <summary>Liveness and readiness probes.</summary>
public static class HealthEndpoints
{
    /// <summary>Health report.</summary>
    /// <param name="Status"><c>live</c>, <c>ready</c>, <c>loading</c> or <c>failed</c>.</param>
    /// <param name="Model">Default model id.</param>
    /// <param name="Error">Why the default model could not be loaded, if so.</param>
    /// <param name="Device">Where models run: <c>cpu</c> or <c>cuda:N</c> (<c>QuantServe:Device</c>, resolved).</param>
    /// <param name="DeviceName">The device in words (name, architecture, memory, driver), or <c>cpu</c>.</param>
    public sealed record HealthStatus(string Status, string? Model = null, string? Error = null, string? Device = null, string? DeviceName = null);

    /// <summary>Maps /health/live and /health/ready.</summary>
    public static IEndpointRouteBuilder MapHealth(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/health").WithTags("Health");
        group.MapGet("/live", (ServingDevice device) => TypedResults.Ok(new HealthStatus("live", Device: device.Name, DeviceName: device.Description)))
            .WithName("Live").WithSummary("200 while the process serves HTTP.");
        group.MapGet("/ready", Ready)
            .WithName("Ready").WithSummary("200 once the default model is loaded; 503 before (or if it failed).");
        return app;
    }

    private static Results<Ok<HealthStatus>, JsonHttpResult<HealthStatus>> Ready(ModelRegistry registry, ServingDevice device)
    {
        if (registry.IsReady) return TypedResults.Ok(new HealthStatus("ready", registry.DefaultModelId, null, device.Name, device.Description));
        var status = registry.DefaultModelError is null ? "loading" : "failed";
        return TypedResults.Json(new HealthStatus(status, registry.DefaultModelId, registry.DefaultModelError, device.Name, device.Description), statusCode: 503);
    }
}
