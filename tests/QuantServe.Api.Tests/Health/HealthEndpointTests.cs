using System.Net;
using System.Text.Json.Nodes;
using QuantServe.Api.Tests.TestSupport;

namespace QuantServe.Api.Tests.Health;

public sealed class HealthEndpointTests
{
    [Fact]
    public async Task Ready_DefaultModelLoaded_Returns200()
    {
        await using var factory = new QuantServeFactory();
        using var client = factory.CreateClient();
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health/live")).StatusCode);
        await factory.WaitReadyAsync();
        var r = await client.GetAsync("/health/ready");
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        Assert.Equal("ready", (string?)JsonNode.Parse(await r.Content.ReadAsStringAsync())!["status"]);
    }

    [Fact]
    public async Task Ready_DefaultModelMissing_Returns503WithReasonWhileLiveStays200()
    {
        await using var factory = new QuantServeFactory(new() { ["QuantServe:DefaultModel"] = "/nonexistent/model.gguf" });
        using var client = factory.CreateClient();
        HttpResponseMessage r;
        JsonNode body;
        int tries = 0;
        do
        {
            r = await client.GetAsync("/health/ready");
            body = JsonNode.Parse(await r.Content.ReadAsStringAsync())!;
            if ((string?)body["status"] == "failed") break;
            await Task.Delay(20);
        } while (++tries < 1500);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, r.StatusCode);
        Assert.Equal("failed", (string?)body["status"]);
        Assert.Contains("/nonexistent/model.gguf", (string?)body["error"]);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health/live")).StatusCode);
    }

    [Fact]
    public async Task Swagger_Document_DescribesEveryEndpointWithExamples()
    {
        await using var factory = new QuantServeFactory();
        using var client = factory.CreateClient();
        var doc = JsonNode.Parse(await client.GetStringAsync("/swagger/v1/swagger.json"))!;
        var paths = doc["paths"]!.AsObject();
        foreach (var p in new[] { "/v1/completions", "/v1/chat/completions", "/v1/models", "/v1/models/{id}", "/health/live", "/health/ready", "/metrics" })
            Assert.True(paths.ContainsKey(p), $"swagger.json lacks {p}");
        var schemas = doc["components"]!["schemas"]!.AsObject();
        Assert.True(schemas.ContainsKey("CompletionRequest") && schemas.ContainsKey("ChatCompletionResponse") && schemas.ContainsKey("OpenAiErrorResponse"));
        Assert.Equal("stories260K", (string?)paths["/v1/completions"]!["post"]!["requestBody"]!["content"]!["application/json"]!["example"]!["model"]);
        Assert.Equal("max_tokens", schemas["CompletionRequest"]!["properties"]!.AsObject().Select(p => p.Key).Single(k => k == "max_tokens"));
        var ui = await client.GetAsync("/swagger/index.html");
        Assert.Equal(HttpStatusCode.OK, ui.StatusCode);
    }
}
