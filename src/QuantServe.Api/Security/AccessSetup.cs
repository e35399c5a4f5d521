using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Http.Timeouts;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.Options;

namespace QuantServe.Api.Security;

/// <summary>Registers and orders access control and request limits: API keys, per-caller rate and concurrency limits
/// (ASP.NET Core's rate limiter), body size limits and request timeouts.</summary>
public static class AccessSetup
{
    /// <summary>Binds <c>QuantServe:Auth</c> and <c>QuantServe:Limits</c> and registers the key store, rate limiter and timeouts.</summary>
    public static IServiceCollection AddQuantServeAccess(this IServiceCollection services, IConfiguration configuration)
    {
        services.Configure<AuthOptions>(configuration.GetSection(AuthOptions.Section));
        services.Configure<LimitsOptions>(configuration.GetSection(LimitsOptions.Section));
        services.AddSingleton<ApiKeyStore>();
        services.AddRateLimiter(o =>
        {
            o.GlobalLimiter = PartitionedRateLimiter.CreateChained(
                PartitionedRateLimiter.Create<HttpContext, string>(RatePartition),
                PartitionedRateLimiter.Create<HttpContext, string>(ConcurrencyPartition));
            o.OnRejected = OnRejected;
        });
        services.AddRequestTimeouts();
        services.AddOptions<RequestTimeoutOptions>().Configure<IOptions<LimitsOptions>>((o, limits) =>
        {
            double seconds = limits.Value.RequestTimeoutSeconds;
            if (seconds <= 0) return;
            o.DefaultPolicy = new RequestTimeoutPolicy
            {
                Timeout = TimeSpan.FromSeconds(seconds),
                TimeoutStatusCode = StatusCodes.Status504GatewayTimeout,
                WriteTimeoutResponse = context => AccessErrors.WriteAsync(context, StatusCodes.Status504GatewayTimeout, "Request timed out",
                    $"The request did not finish within {seconds:0.###} seconds (QuantServe:Limits:RequestTimeoutSeconds).", "server_error", "request_timeout"),
            };
        });
        return services;
    }

    /// <summary>Checks the key configuration (a bad one stops startup here), says at startup whether the server is open,
    /// then adds key checks, rate limits and body limits to the pipeline.</summary>
    public static WebApplication UseQuantServeAccess(this WebApplication app)
    {
        var keys = app.Services.GetRequiredService<ApiKeyStore>();
        var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("QuantServe.Api.Security");
        if (!keys.Enabled)
        {
            if (keys.Count > 0)
                log.LogWarning("API keys disabled: the server is open ({Count} configured keys are ignored while QuantServe:Auth:Enabled is false)", keys.Count);
            else
                log.LogWarning("API keys disabled: the server is open");
        }
        else log.LogInformation("API keys required: {Count} keys accepted", keys.Count);
        app.UseMiddleware<ApiKeyMiddleware>();
        app.UseRateLimiter();
        app.UseMiddleware<ApiKeyEnforcementMiddleware>();
        app.UseMiddleware<RequestBodyLimitMiddleware>();
        return app;
    }

    /// <summary>Adds request timeouts; call inside the /v1 error translation so a timed-out request is answered by the
    /// timeout policy (504 in the route's shape) rather than taken for a client that left.</summary>
    public static WebApplication UseQuantServeTimeouts(this WebApplication app)
    {
        app.UseWhen(c => !IsLongLived(c.Request), b => b.UseRequestTimeouts());
        return app;
    }

    /// <summary>Requests meant to outlive any fixed timeout: progress streams, model uploads, probes and scrapes.</summary>
    private static bool IsLongLived(HttpRequest r)
        => ApiKeyMiddleware.RequiredScope(r.Path) is null
           || (r.Path.StartsWithSegments("/quantize") && (r.Path.Value!.EndsWith("/events", StringComparison.Ordinal) || HttpMethods.IsPost(r.Method)));

    /// <summary>The rate-limit partition: the key's name for an authenticated caller, else the client address.</summary>
    public static string PartitionKey(HttpContext context)
        => context.Features.Get<ApiCaller>() is { } caller ? "key:" + caller.Name : "ip:" + (context.Connection.RemoteIpAddress?.ToString() ?? "unknown");

    private static RateLimitPartition<string> RatePartition(HttpContext context)
    {
        var limits = context.RequestServices.GetRequiredService<IOptions<LimitsOptions>>().Value;
        if (limits.RequestsPerWindow <= 0 || ApiKeyMiddleware.RequiredScope(context.Request.Path) is null)
            return RateLimitPartition.GetNoLimiter("open");
        return RateLimitPartition.GetFixedWindowLimiter(PartitionKey(context), _ => new FixedWindowRateLimiterOptions
        {
            PermitLimit = limits.RequestsPerWindow,
            Window = TimeSpan.FromSeconds(Math.Max(1, limits.WindowSeconds)),
            QueueLimit = 0,
        });
    }

    private static RateLimitPartition<string> ConcurrencyPartition(HttpContext context)
    {
        var limits = context.RequestServices.GetRequiredService<IOptions<LimitsOptions>>().Value;
        if (limits.ConcurrentRequests <= 0 || ApiKeyMiddleware.RequiredScope(context.Request.Path) is null)
            return RateLimitPartition.GetNoLimiter("open");
        return RateLimitPartition.GetConcurrencyLimiter(PartitionKey(context), _ => new ConcurrencyLimiterOptions
        {
            PermitLimit = limits.ConcurrentRequests,
            QueueLimit = 0,
        });
    }

    private static async ValueTask OnRejected(OnRejectedContext rejected, CancellationToken cancellation)
    {
        var context = rejected.HttpContext;
        int retry = rejected.Lease.TryGetMetadata(MetadataName.RetryAfter, out var after) ? Math.Max(1, (int)Math.Ceiling(after.TotalSeconds)) : 1;
        bool concurrency = !rejected.Lease.TryGetMetadata(MetadataName.RetryAfter, out _);
        string who = context.Features.Get<ApiCaller>() is { } c ? $"API key '{c.Name}'" : "this client";
        string message = concurrency
            ? $"Too many concurrent requests for {who}; retry when one finishes."
            : $"Rate limit reached for {who}; retry in {retry} s.";
        await AccessErrors.WriteAsync(context, StatusCodes.Status429TooManyRequests, "Too many requests", message, "rate_limit_error",
            concurrency ? "concurrency_limit_exceeded" : "rate_limit_exceeded", retryAfterSeconds: retry);
    }
}
