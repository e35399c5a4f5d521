using Microsoft.Extensions.Options;
using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace QuantServe.Api.Telemetry;

/// <summary>
/// Owns the OpenTelemetry SDK's meter and tracer providers. A DI singleton: built when first resolved (at startup) and
/// disposed — flushing exporters — when the host shuts down.
/// </summary>
public sealed class TelemetryProviders : IDisposable
{
    /// <summary>Meters of ASP.NET Core itself that are exported with QuantServe's own.</summary>
    public static readonly string[] AspNetCoreMeters = ["Microsoft.AspNetCore.Hosting", "Microsoft.AspNetCore.Server.Kestrel"];

    private readonly MeterProvider _meters;
    private readonly TracerProvider _tracer;

    /// <summary>Builds both providers; OTLP export is added only when an endpoint is configured.</summary>
    public TelemetryProviders(IOptions<TelemetryOptions> options, IConfiguration configuration, PrometheusScraper scraper)
    {
        var o = options.Value;
        string? endpoint = string.IsNullOrWhiteSpace(o.OtlpEndpoint) ? null : o.OtlpEndpoint;
        bool envEndpoint = !string.IsNullOrWhiteSpace(configuration["OTEL_EXPORTER_OTLP_ENDPOINT"])
            || !string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_ENDPOINT"));
        OtlpEnabled = endpoint is not null || envEndpoint;

        var resource = ResourceBuilder.CreateDefault().AddService(o.ServiceName);
        var meterBuilder = Sdk.CreateMeterProviderBuilder()
            .SetResourceBuilder(resource)
            .AddMeter(QuantServeTelemetry.Name)
            .AddMeter(AspNetCoreMeters)
            .AddView("gen_ai.server.request.duration", new ExplicitBucketHistogramConfiguration { Boundaries = QuantServeTelemetry.DurationBuckets })
            .AddView("gen_ai.server.time_to_first_token", new ExplicitBucketHistogramConfiguration { Boundaries = QuantServeTelemetry.DurationBuckets })
            .AddView("gen_ai.server.time_per_output_token", new ExplicitBucketHistogramConfiguration { Boundaries = QuantServeTelemetry.PerTokenBuckets })
            .AddView("gen_ai.client.token.usage", new ExplicitBucketHistogramConfiguration { Boundaries = QuantServeTelemetry.TokenBuckets })
            .AddReader(scraper.Reader);
        var tracerBuilder = Sdk.CreateTracerProviderBuilder()
            .SetResourceBuilder(resource)
            .AddSource(QuantServeTelemetry.Name)
            .AddSource("Microsoft.AspNetCore");
        if (OtlpEnabled)
        {
            meterBuilder.AddOtlpExporter(e => Configure(e, endpoint, o.OtlpProtocol));
            tracerBuilder.AddOtlpExporter(e => Configure(e, endpoint, o.OtlpProtocol));
        }
        _meters = meterBuilder.Build();
        _tracer = tracerBuilder.Build();
    }

    /// <summary>Whether metrics and traces are also pushed over OTLP.</summary>
    public bool OtlpEnabled { get; }

    private static void Configure(OtlpExporterOptions e, string? endpoint, string? protocol)
    {
        // Without an explicit endpoint the exporter has already read OTEL_EXPORTER_OTLP_* itself.
        if (endpoint is not null) e.Endpoint = new Uri(endpoint);
        if (protocol is not null)
            e.Protocol = protocol.Equals("http/protobuf", StringComparison.OrdinalIgnoreCase) || protocol.Equals("http", StringComparison.OrdinalIgnoreCase)
                ? OtlpExportProtocol.HttpProtobuf : OtlpExportProtocol.Grpc;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _meters.Dispose();
        _tracer.Dispose();
    }
}
