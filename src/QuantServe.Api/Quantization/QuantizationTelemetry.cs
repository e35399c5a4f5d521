using System.Diagnostics;
using System.Diagnostics.Metrics;
using QuantServe.Api.Telemetry;
using QuantServe.Engine.Evaluation;

namespace QuantServe.Api.Quantization;

/// <summary>
/// Quantization metrics and per-stage spans. Uses the meter and activity source name of <see cref="QuantServeTelemetry"/>,
/// which the SDK setup in Telemetry/ already subscribes to, so these reach /metrics and OTLP with no extra wiring.
/// </summary>
public sealed class QuantizationTelemetry : IDisposable
{
    private readonly Meter _meter;
    private readonly Histogram<double> _ppl, _kld, _top1, _degradation, _duration;
    private readonly object _gate = new();
    private readonly Dictionary<(string Model, string Precision, string Component, string? Device), long> _vram = new();

    /// <summary>Creates the instruments; <paramref name="queue"/>'s depth is observed for the queue gauge.</summary>
    public QuantizationTelemetry(JobQueue queue)
    {
        _meter = new Meter(QuantServeTelemetry.Name);
        ActivitySource = new ActivitySource(QuantServeTelemetry.Name);
        _ppl = _meter.CreateHistogram<double>("quantserve.quantization.perplexity_ratio", null, "Quantized / base perplexity on the evaluation text.");
        _kld = _meter.CreateHistogram<double>("quantserve.quantization.kl_divergence", null, "Mean KL divergence of the quantized model from the base.");
        _top1 = _meter.CreateHistogram<double>("quantserve.quantization.top1_agreement", null, "Fraction of positions whose top token agrees with the base.");
        _degradation = _meter.CreateHistogram<double>("quantserve.quantization.degradation_pct", null, "Task-eval score loss of the quantized model.");
        _duration = _meter.CreateHistogram<double>("quantserve.quantization.job.duration", "s", "Quantization job duration.");
        _meter.CreateObservableGauge("quantserve.quantization.queue_depth", () => (long)queue.Depth, "{job}", "Jobs waiting for a worker.");
        _meter.CreateObservableGauge("quantserve.model.vram", ObserveVram, "By", "Estimated accelerator memory of a model by component.");
    }

    /// <summary>Source of the per-stage spans.</summary>
    public ActivitySource ActivitySource { get; }

    /// <summary>Starts a span for one stage of job <paramref name="jobId"/>.</summary>
    public Activity? Stage(string jobId, string stage, string model, string method)
    {
        var a = ActivitySource.StartActivity($"quantize {stage}", ActivityKind.Internal);
        a?.SetTag("quantserve.job.id", jobId);
        a?.SetTag("quantserve.job.stage", stage);
        a?.SetTag("quantserve.model", model);
        a?.SetTag("quantserve.quantization.method", method);
        return a;
    }

    /// <summary>Records the quality measures of a finished job.</summary>
    public void RecordQuality(string model, string method, QualityMetrics q, double? degradationPct)
    {
        var tags = new TagList { { "model", model }, { "method", method } };
        _ppl.Record(q.Perplexity / q.PerplexityBase, tags);
        _kld.Record(q.KldMean, tags);
        _top1.Record(q.Top1Agreement, tags);
        if (degradationPct is { } d) _degradation.Record(d, tags);
    }

    /// <summary>Records a job's duration with its final status.</summary>
    public void RecordDuration(string method, string status, double seconds)
        => _duration.Record(seconds, new TagList { { "method", method }, { "status", status } });

    /// <summary>Publishes a model's VRAM estimate (weights, kv_cache, activations, overhead, total) and, for a model
    /// resident on <paramref name="device"/>, what the backend allocated (<c>resident_model</c>: weights, tables and
    /// scratch; <c>resident_kv_cache</c>: the caches of the estimate's batch and context; <c>resident_total</c>). Series
    /// carry a <c>device</c> tag when <paramref name="device"/> is given.</summary>
    public void RecordVram(string model, string precision, VramEstimate v, string? device = null, long? residentModelBytes = null, long? residentKvBytes = null)
    {
        lock (_gate)
        {
            _vram[(model, precision, "weights", device)] = v.WeightsBytes;
            _vram[(model, precision, "kv_cache", device)] = v.KvCacheBytes;
            _vram[(model, precision, "activations", device)] = v.ActivationsBytes;
            _vram[(model, precision, "overhead", device)] = v.OverheadBytes;
            _vram[(model, precision, "total", device)] = v.TotalBytes;
            if (residentModelBytes is { } m && residentKvBytes is { } kv)
            {
                _vram[(model, precision, "resident_model", device)] = m;
                _vram[(model, precision, "resident_kv_cache", device)] = kv;
                _vram[(model, precision, "resident_total", device)] = m + kv;
            }
        }
    }

    private IEnumerable<Measurement<long>> ObserveVram()
    {
        lock (_gate)
            return _vram.Select(kv =>
            {
                var tags = new TagList
                {
                    { "model", kv.Key.Model }, { "precision", kv.Key.Precision }, { "component", kv.Key.Component },
                };
                if (kv.Key.Device is { } d) tags.Add("device", d);
                return new Measurement<long>(kv.Value, tags);
            }).ToList();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _meter.Dispose();
        ActivitySource.Dispose();
    }
}
