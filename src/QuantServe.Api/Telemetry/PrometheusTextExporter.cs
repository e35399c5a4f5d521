using System.Globalization;
using System.Text;
using OpenTelemetry;
using OpenTelemetry.Metrics;

namespace QuantServe.Api.Telemetry;

/// <summary>
/// Serialises an OpenTelemetry metric batch in the Prometheus text exposition format 0.0.4. It runs only on scrape:
/// <see cref="PrometheusScraper"/> asks its reader to collect, and the SDK calls <see cref="Export"/> synchronously.
/// It keeps the default export modes: the SDK lets only its own internal scope collect from pull-only exporters.
/// </summary>
public sealed class PrometheusTextExporter : BaseExporter<Metric>
{
    private StringBuilder? _target;

    /// <summary>Where the next <see cref="Export"/> writes; set by the scraper around a collection.</summary>
    internal StringBuilder? Target { get => _target; set => _target = value; }

    /// <inheritdoc />
    public override ExportResult Export(in Batch<Metric> batch)
    {
        var sb = _target;
        if (sb is null) return ExportResult.Failure;
        foreach (var metric in batch) Write(sb, metric);
        return ExportResult.Success;
    }

    private static void Write(StringBuilder sb, Metric metric)
    {
        string name = MetricName(metric);
        bool counter = metric.MetricType is MetricType.LongSum or MetricType.DoubleSum;
        string type = metric.MetricType switch
        {
            MetricType.LongSum or MetricType.DoubleSum => "counter",
            MetricType.Histogram => "histogram",
            MetricType.LongGauge or MetricType.DoubleGauge
                or MetricType.LongSumNonMonotonic or MetricType.DoubleSumNonMonotonic => "gauge",
            _ => "",
        };
        if (type.Length == 0) return; // exponential histograms have no 0.0.4 representation
        string family = counter ? name + "_total" : name;
        if (!string.IsNullOrEmpty(metric.Description))
            sb.Append("# HELP ").Append(family).Append(' ').Append(EscapeHelp(metric.Description)).Append('\n');
        sb.Append("# TYPE ").Append(family).Append(' ').Append(type).Append('\n');

        foreach (ref readonly var point in metric.GetMetricPoints())
        {
            long ms = point.EndTime.ToUnixTimeMilliseconds();
            switch (metric.MetricType)
            {
                case MetricType.LongSum:
                case MetricType.LongSumNonMonotonic:
                    Sample(sb, family, point.Tags, null, Num(point.GetSumLong()), ms);
                    break;
                case MetricType.DoubleSum:
                case MetricType.DoubleSumNonMonotonic:
                    Sample(sb, family, point.Tags, null, Num(point.GetSumDouble()), ms);
                    break;
                case MetricType.LongGauge:
                    Sample(sb, family, point.Tags, null, Num(point.GetGaugeLastValueLong()), ms);
                    break;
                case MetricType.DoubleGauge:
                    Sample(sb, family, point.Tags, null, Num(point.GetGaugeLastValueDouble()), ms);
                    break;
                case MetricType.Histogram:
                    long cumulative = 0;
                    foreach (var bucket in point.GetHistogramBuckets())
                    {
                        cumulative += bucket.BucketCount;
                        string le = double.IsPositiveInfinity(bucket.ExplicitBound) ? "+Inf" : Num(bucket.ExplicitBound);
                        Sample(sb, name + "_bucket", point.Tags, le, Num(cumulative), ms);
                    }
                    Sample(sb, name + "_sum", point.Tags, null, Num(point.GetHistogramSum()), ms);
                    Sample(sb, name + "_count", point.Tags, null, Num(point.GetHistogramCount()), ms);
                    break;
            }
        }
    }

    private static void Sample(StringBuilder sb, string name, ReadOnlyTagCollection tags, string? le, string value, long ms)
    {
        sb.Append(name);
        bool any = false;
        foreach (var tag in tags)
        {
            sb.Append(any ? ',' : '{');
            any = true;
            sb.Append(SanitizeName(tag.Key)).Append("=\"")
              .Append(EscapeLabel(Convert.ToString(tag.Value, CultureInfo.InvariantCulture) ?? "")).Append('"');
        }
        if (le is not null)
        {
            sb.Append(any ? ',' : '{');
            any = true;
            sb.Append("le=\"").Append(le).Append('"');
        }
        if (any) sb.Append('}');
        sb.Append(' ').Append(value).Append(' ').Append(ms.ToString(CultureInfo.InvariantCulture)).Append('\n');
    }

    /// <summary>The Prometheus family name: dots and other illegal characters become underscores, and the unit is
    /// appended the way OpenTelemetry's Prometheus compatibility rules say (s → seconds; {annotations} dropped).</summary>
    internal static string MetricName(Metric metric)
    {
        string name = SanitizeName(metric.Name);
        string unit = UnitSuffix(metric.Unit);
        if (unit.Length > 0 && !name.EndsWith("_" + unit, StringComparison.Ordinal)) name += "_" + unit;
        return name;
    }

    private static string UnitSuffix(string? unit)
    {
        if (string.IsNullOrEmpty(unit) || unit.StartsWith('{')) return "";
        return unit switch
        {
            "s" => "seconds",
            "ms" => "milliseconds",
            "By" => "bytes",
            "1" => "ratio",
            _ => SanitizeName(unit),
        };
    }

    private static string SanitizeName(string name)
    {
        var sb = new StringBuilder(name.Length);
        foreach (char c in name)
            sb.Append(char.IsAsciiLetterOrDigit(c) || c == '_' || c == ':' ? c : '_');
        if (sb.Length > 0 && char.IsAsciiDigit(sb[0])) sb.Insert(0, '_');
        return sb.ToString();
    }

    private static string EscapeLabel(string v) => v.Replace("\\", "\\\\").Replace("\"", "\\\"").Replace("\n", "\\n");

    private static string EscapeHelp(string v) => v.Replace("\\", "\\\\").Replace("\n", "\\n");

    private static string Num(long v) => v.ToString(CultureInfo.InvariantCulture);

    private static string Num(double v) => double.IsPositiveInfinity(v) ? "+Inf"
        : double.IsNegativeInfinity(v) ? "-Inf" : double.IsNaN(v) ? "NaN" : v.ToString("R", CultureInfo.InvariantCulture);
}
