using System.Text;
using OpenTelemetry.Metrics;

namespace QuantServe.Api.Telemetry;

/// <summary>The pull side of <c>/metrics</c>: a metric reader that collects only when scraped, rendering Prometheus text.</summary>
public sealed class PrometheusScraper
{
    /// <summary>Content type of the Prometheus text exposition format.</summary>
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    private readonly PrometheusTextExporter _exporter = new();
    private readonly Lock _gate = new();

    /// <summary>Creates the reader that <see cref="TelemetryProviders"/> attaches to its MeterProvider.</summary>
    public PrometheusScraper() => Reader = new BaseExportingMetricReader(_exporter);

    /// <summary>The reader to add to a MeterProvider (cumulative temporality, as Prometheus expects).</summary>
    public MetricReader Reader { get; }

    /// <summary>Collects every metric now and returns the exposition text.</summary>
    public string Scrape()
    {
        lock (_gate)
        {
            var sb = new StringBuilder(4096);
            _exporter.Target = sb;
            try
            {
                Reader.Collect(5000);
            }
            finally
            {
                _exporter.Target = null;
            }
            return sb.ToString();
        }
    }
}
