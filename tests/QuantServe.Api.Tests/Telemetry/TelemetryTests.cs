using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using QuantServe.Api.Telemetry;
using QuantServe.Api.Tests.TestSupport;

namespace QuantServe.Api.Tests.Telemetry;

public sealed class TelemetryTests
{
    [Fact]
    public async Task Completion_Request_EmitsGenAiSpanWithUsage()
    {
        var spans = new ConcurrentBag<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == QuantServeTelemetry.Name,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Add,
        };
        ActivitySource.AddActivityListener(listener);
        await using var factory = new QuantServeFactory();
        using var client = factory.CreateClient();
        await factory.WaitReadyAsync();
        var (r, body) = await Json.PostAsync(client, "/v1/completions", new { model = "stories260K", prompt = "Once upon a time", max_tokens = 7, temperature = 0 });
        r.EnsureSuccessStatusCode();
        // The listener is process-wide; this request's span is the one carrying its response id.
        var span = Assert.Single(spans, s => (string?)s.GetTagItem("gen_ai.response.id") == (string?)body["id"]);
        Assert.Equal("text_completion stories260K", span.DisplayName);
        Assert.Equal("text_completion", span.GetTagItem("gen_ai.operation.name"));
        Assert.Equal("quantserve", span.GetTagItem("gen_ai.provider.name"));
        Assert.Equal("stories260K", span.GetTagItem("gen_ai.request.model"));
        Assert.Equal(5, span.GetTagItem("gen_ai.usage.input_tokens"));
        Assert.Equal(7, span.GetTagItem("gen_ai.usage.output_tokens"));
    }

    [Fact]
    public async Task Providers_OtlpEndpointConfigured_EnablesOtlpExport()
    {
        await using var withEndpoint = new QuantServeFactory(new() { ["QuantServe:Telemetry:OtlpEndpoint"] = "http://127.0.0.1:4317" });
        using (withEndpoint.CreateClient())
            Assert.True(withEndpoint.Services.GetRequiredService<TelemetryProviders>().OtlpEnabled);
        if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_ENDPOINT"))) return;
        await using var without = new QuantServeFactory();
        using (without.CreateClient())
            Assert.False(without.Services.GetRequiredService<TelemetryProviders>().OtlpEnabled);
    }
}
