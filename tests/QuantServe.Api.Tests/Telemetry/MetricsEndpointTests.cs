using QuantServe.Api.Tests.TestSupport;

namespace QuantServe.Api.Tests.Telemetry;

public sealed class MetricsEndpointTests
{
    [Fact]
    public async Task Metrics_AfterRequests_ServesPrometheusTextWithAspNetCoreMeters()
    {
        using var factory = new QuantServeFactory();
        using var client = factory.CreateClient();
        (await client.GetAsync("/health/live")).EnsureSuccessStatusCode();
        var response = await client.GetAsync("/metrics");
        response.EnsureSuccessStatusCode();
        Assert.Equal("text/plain", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("0.0.4", response.Content.Headers.ContentType?.Parameters.Single(p => p.Name == "version").Value);
        string text = await response.Content.ReadAsStringAsync();
        Assert.Contains("# TYPE http_server_request_duration_seconds histogram", text);
        Assert.Matches("http_server_request_duration_seconds_count\\{[^}]*http_route=\"/health/live\"[^}]*\\} [1-9]", text);
    }
}
