using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace QuantServe.Api.Telemetry;

/// <summary>
/// QuantServe's meter and activity source. Instrument names and attributes follow the OpenTelemetry gen_ai semantic
/// conventions (server-side generative AI metrics) so standard dashboards work unchanged.
/// </summary>
public sealed class QuantServeTelemetry : IDisposable
{
    /// <summary>Name of the meter and the activity source.</summary>
    public const string Name = "QuantServe";

    /// <summary>gen_ai.provider.name value.</summary>
    public const string Provider = "quantserve";

    /// <summary>Operation names of the gen_ai conventions.</summary>
    public const string TextCompletion = "text_completion", Chat = "chat";

    /// <summary>Bucket boundaries the conventions recommend for durations in seconds.</summary>
    public static readonly double[] DurationBuckets =
        [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92];

    /// <summary>Bucket boundaries the conventions recommend for time per output token.</summary>
    public static readonly double[] PerTokenBuckets =
        [0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5];

    /// <summary>Bucket boundaries the conventions recommend for token counts.</summary>
    public static readonly double[] TokenBuckets =
        [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864];

    private readonly Meter _meter;
    private readonly Histogram<double> _requestDuration;
    private readonly Histogram<double> _timeToFirstToken;
    private readonly Histogram<double> _timePerOutputToken;
    private readonly Histogram<long> _tokenUsage;
    private readonly Counter<long> _promptTokens;
    private readonly Counter<long> _generatedTokens;
    private readonly UpDownCounter<long> _running;
    private readonly UpDownCounter<long> _waiting;

    /// <summary>Creates the meter and its instruments.</summary>
    public QuantServeTelemetry()
    {
        _meter = new Meter(Name, typeof(QuantServeTelemetry).Assembly.GetName().Version?.ToString());
        ActivitySource = new ActivitySource(Name);
        _requestDuration = _meter.CreateHistogram<double>("gen_ai.server.request.duration", "s",
            "Generative AI server request duration such as time-to-last byte or last output token.");
        _timeToFirstToken = _meter.CreateHistogram<double>("gen_ai.server.time_to_first_token", "s",
            "Time to generate first token for successful responses.");
        _timePerOutputToken = _meter.CreateHistogram<double>("gen_ai.server.time_per_output_token", "s",
            "Time per output token generated after the first token for successful responses.");
        _tokenUsage = _meter.CreateHistogram<long>("gen_ai.client.token.usage", "{token}",
            "Number of input and output tokens used.");
        _promptTokens = _meter.CreateCounter<long>("quantserve.prompt_tokens", "{token}", "Prompt tokens processed.");
        _generatedTokens = _meter.CreateCounter<long>("quantserve.generated_tokens", "{token}", "Tokens generated.");
        _running = _meter.CreateUpDownCounter<long>("quantserve.requests.running", "{request}", "Requests being decoded.");
        _waiting = _meter.CreateUpDownCounter<long>("quantserve.requests.waiting", "{request}", "Requests queued for a batch slot.");
    }

    /// <summary>Source of the per-request generation spans.</summary>
    public ActivitySource ActivitySource { get; }

    /// <summary>Starts the gen_ai span of one request ("{operation} {model}").</summary>
    public Activity? StartRequest(string operation, string model)
    {
        var activity = ActivitySource.StartActivity($"{operation} {model}", ActivityKind.Server);
        activity?.SetTag("gen_ai.operation.name", operation);
        activity?.SetTag("gen_ai.provider.name", Provider);
        activity?.SetTag("gen_ai.request.model", model);
        return activity;
    }

    /// <summary>Records a finished (or failed) generation request.</summary>
    public void RecordRequest(string operation, string model, double seconds, int promptTokens, int completionTokens,
        double? firstTokenSeconds, string? errorType)
    {
        var tags = new TagList
        {
            { "gen_ai.operation.name", operation },
            { "gen_ai.provider.name", Provider },
            { "gen_ai.request.model", model },
        };
        if (errorType is not null) tags.Add("error.type", errorType);
        _requestDuration.Record(seconds, tags);
        if (errorType is not null) return;

        if (firstTokenSeconds is { } ttft && completionTokens > 0)
        {
            _timeToFirstToken.Record(ttft, tags);
            if (completionTokens > 1)
                _timePerOutputToken.Record((seconds - ttft) / (completionTokens - 1), tags);
        }
        var input = tags;
        input.Add("gen_ai.token.type", "input");
        _tokenUsage.Record(promptTokens, input);
        var output = tags;
        output.Add("gen_ai.token.type", "output");
        _tokenUsage.Record(completionTokens, output);
        var modelTag = new KeyValuePair<string, object?>("gen_ai.request.model", model);
        _promptTokens.Add(promptTokens, modelTag);
        _generatedTokens.Add(completionTokens, modelTag);
    }

    /// <summary>A request moved into (+1) or out of (-1) the running batch.</summary>
    public void Running(int delta) => _running.Add(delta);

    /// <summary>A request joined (+1) or left (-1) the queue.</summary>
    public void Waiting(int delta) => _waiting.Add(delta);

    /// <inheritdoc />
    public void Dispose()
    {
        _meter.Dispose();
        ActivitySource.Dispose();
    }
}
