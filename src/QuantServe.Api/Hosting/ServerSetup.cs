using Microsoft.AspNetCore.Http.Json;
using QuantServe.Api.Health;
using QuantServe.Api.Logging;
using QuantServe.Api.Models;
using QuantServe.Api.Quantization;
using QuantServe.Api.OpenAi;
using QuantServe.Api.OpenAi.Chat;
using QuantServe.Api.OpenAi.Completions;
using QuantServe.Api.OpenAi.Models;
using QuantServe.Api.Registry;
using QuantServe.Api.Security;
using QuantServe.Api.Serving;
using QuantServe.Api.Telemetry;

namespace QuantServe.Api.Hosting;

/// <summary>The server's services and pipeline, called from Program.cs.</summary>
public static class ServerSetup
{
    /// <summary>Registers logging, options, telemetry, the model registry, serving and Swagger.</summary>
    public static WebApplicationBuilder AddQuantServe(this WebApplicationBuilder builder)
    {
        builder.Logging.UseQuantServeSerilog();
        var services = builder.Services;
        services.Configure<QuantServeOptions>(builder.Configuration.GetSection(QuantServeOptions.Section));
        // Graceful stop: Kestrel stops accepting, in-flight requests (streams included) run to their end within this bound.
        double shutdown = builder.Configuration.GetSection(QuantServeOptions.Section).GetValue(nameof(QuantServeOptions.ShutdownTimeoutSeconds), 30.0);
        services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(Math.Max(0, shutdown)));
        services.Configure<TelemetryOptions>(builder.Configuration.GetSection(TelemetryOptions.Section));
        services.Configure<JsonOptions>(o => OpenAiJson.Configure(o.SerializerOptions));
        // Binding failures (malformed JSON, wrong content type) throw, so the /v1 middleware can answer with OpenAI's envelope.
        services.Configure<RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);

        services.AddSingleton<QuantServeTelemetry>();
        services.AddSingleton<PrometheusScraper>();
        services.AddSingleton<TelemetryProviders>();
        services.AddSingleton<ModelRegistry>();
        services.AddSingleton<ServingDevice>();
        services.AddSingleton<SchedulerPool>();
        services.AddHostedService<DefaultModelStartup>();
        services.Configure<JobsSettings>(builder.Configuration.GetSection(JobsSettings.Section));
        services.Configure<UploadSettings>(builder.Configuration.GetSection(UploadSettings.Section));
        services.AddSingleton<JobStore>();
        services.AddSingleton<JobQueue>();
        services.AddSingleton<QuantizationTelemetry>();
        services.AddSingleton<JobRunner>();
        services.AddHostedService<JobWorker>();
        services.AddQuantServeAccess(builder.Configuration);
        services.AddQuantServeSwagger();
        return builder;
    }

    /// <summary>Builds the middleware pipeline and maps every endpoint.</summary>
    public static WebApplication UseQuantServe(this WebApplication app)
    {
        // Resolved now so the SDK listens from the first request; the container disposes it at shutdown.
        app.Services.GetRequiredService<TelemetryProviders>();
        app.Services.GetRequiredService<QuantServeTelemetry>();
        app.Services.GetRequiredService<QuantizationTelemetry>();
        // The device is opened (or the CPU chosen, with its log line) before anything is served; a cuda:N that cannot be
        // opened stops the start here with the reason.
        app.Services.GetRequiredService<ServingDevice>();

        app.UseMiddleware<RequestLoggingMiddleware>();
        app.UseQuantServeAccess();
        app.UseWhen(c => c.Request.Path.StartsWithSegments("/v1"), v1 => v1.UseMiddleware<OpenAiErrorMiddleware>());
        app.UseQuantServeTimeouts();
        app.UseSwagger();
        app.UseSwaggerUI(o =>
        {
            o.SwaggerEndpoint("/swagger/v1/swagger.json", "QuantServe v1");
            o.RoutePrefix = "swagger";
        });

        app.MapCompletions();
        app.MapChat();
        app.MapModels();
        app.MapHealth();
        app.MapQuantize();
        app.MapModelPlanning();
        app.MapPrometheusMetrics();
        return app;
    }
}
