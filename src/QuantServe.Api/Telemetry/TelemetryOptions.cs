namespace QuantServe.Api.Telemetry;

/// <summary>The <c>QuantServe:Telemetry</c> section. The standard OTEL_* environment variables apply as well.</summary>
public sealed class TelemetryOptions
{
    /// <summary>Configuration section name.</summary>
    public const string Section = "QuantServe:Telemetry";

    /// <summary>OTLP collector endpoint (e.g. http://localhost:4317). Without it (and without OTEL_EXPORTER_OTLP_ENDPOINT) nothing is exported over OTLP.</summary>
    public string? OtlpEndpoint { get; set; }

    /// <summary><c>grpc</c> (default) or <c>http/protobuf</c>.</summary>
    public string? OtlpProtocol { get; set; }

    /// <summary>service.name resource attribute (OTEL_SERVICE_NAME overrides it).</summary>
    public string ServiceName { get; set; } = "quantserve";
}
