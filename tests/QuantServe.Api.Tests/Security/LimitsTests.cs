using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using QuantServe.Api.Tests.TestSupport;

namespace QuantServe.Api.Tests.Security;

public sealed class LimitsTests
{
    /// <summary>Starts <paramref name="factory"/> on Kestrel at loopback, for what needs a real socket: back-pressure on a
    /// stream, chunked bodies against the server's own size limit.</summary>
    private static HttpClient Kestrel(QuantServeFactory factory)
    {
        factory.UseKestrel(o => o.Listen(System.Net.IPAddress.Loopback, 0));
        factory.StartServer();
        var addresses = factory.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>()
            .Features.Get<Microsoft.AspNetCore.Hosting.Server.Features.IServerAddressesFeature>()!.Addresses;
        return new HttpClient { BaseAddress = new Uri(addresses.First()) };
    }

    private static HttpRequestMessage Get(string path, string key)
    {
        var r = new HttpRequestMessage(HttpMethod.Get, path);
        r.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return r;
    }

    [Fact]
    public async Task RateLimit_BeyondPermits_429WithRetryAfterPerKey()
    {
        await using var factory = new QuantServeFactory(SecuredServer.Settings(new() { ["QuantServe:Limits:RequestsPerWindow"] = "3", ["QuantServe:Limits:WindowSeconds"] = "60" }));
        using var client = factory.CreateClient();
        for (int i = 0; i < 3; i++) Assert.Equal(HttpStatusCode.OK, (await client.SendAsync(Get("/v1/models", SecuredServer.InferenceKey))).StatusCode);
        var r = await client.SendAsync(Get("/v1/models", SecuredServer.InferenceKey));
        var body = JsonNode.Parse(await r.Content.ReadAsStringAsync())!;
        Json.AssertError(r, body, 429, "rate_limit_error", code: "rate_limit_exceeded");
        Assert.InRange(r.Headers.RetryAfter!.Delta!.Value.TotalSeconds, 1, 60);

        // Another key has its own allowance; admin routes answer 429 as ProblemDetails.
        Assert.Equal(HttpStatusCode.OK, (await client.SendAsync(Get("/v1/models", SecuredServer.BothKey))).StatusCode);
        for (int i = 0; i < 3; i++) await client.SendAsync(Get("/quantize", SecuredServer.AdminKey));
        var p = await client.SendAsync(Get("/quantize", SecuredServer.AdminKey));
        Assert.Equal(HttpStatusCode.TooManyRequests, p.StatusCode);
        Assert.Equal("application/problem+json", p.Content.Headers.ContentType?.MediaType);
        Assert.NotNull(p.Headers.RetryAfter);
        // Probes and scrapes are never limited.
        for (int i = 0; i < 5; i++) Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health/live")).StatusCode);
    }

    [Fact]
    public async Task RateLimit_WrongKeys_CountedPerClientSoGuessingIsThrottled()
    {
        await using var factory = new QuantServeFactory(SecuredServer.Settings(new() { ["QuantServe:Limits:RequestsPerWindow"] = "3" }));
        using var client = factory.CreateClient();
        for (int i = 0; i < 3; i++)
            Assert.Equal(HttpStatusCode.Unauthorized, (await client.SendAsync(Get("/v1/models", $"sk-guess-{i}-0123456789abcdef"))).StatusCode);
        var r = await client.SendAsync(Get("/v1/models", "sk-guess-3-0123456789abcdef"));
        Json.AssertError(r, JsonNode.Parse(await r.Content.ReadAsStringAsync())!, 429, "rate_limit_error", code: "rate_limit_exceeded");
        // A valid key has its own allowance.
        Assert.Equal(HttpStatusCode.OK, (await client.SendAsync(Get("/v1/models", SecuredServer.InferenceKey))).StatusCode);
    }

    [Fact]
    public async Task RateLimit_Anonymous_PartitionedByClient()
    {
        await using var factory = new QuantServeFactory(new() { ["QuantServe:Limits:RequestsPerWindow"] = "2" });
        using var client = factory.CreateClient();
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/v1/models")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/v1/models")).StatusCode);
        Assert.Equal(HttpStatusCode.TooManyRequests, (await client.GetAsync("/v1/models")).StatusCode);
    }

    [Fact]
    public async Task ConcurrencyLimit_SecondRequestWhileFirstInFlight_429()
    {
        await using var factory = new QuantServeFactory(SecuredServer.Settings(new() { ["QuantServe:Limits:ConcurrentRequests"] = "1", ["QuantServe:MaxBatch"] = "64" }));
        using var client = Kestrel(factory);
        await factory.WaitReadyAsync();
        // A long stream the client does not read: the server cannot finish it while its socket buffers are full, so the
        // request stays in flight until the client lets go.
        var stream = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = new StringContent("""{"model":"stories260K","prompt":"Once","n":64,"max_tokens":400,"stream":true}""", Encoding.UTF8, "application/json"),
        };
        stream.Headers.Authorization = new AuthenticationHeaderValue("Bearer", SecuredServer.InferenceKey);
        using (var first = await client.SendAsync(stream, HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
            var refused = await client.SendAsync(Get("/v1/models", SecuredServer.InferenceKey));
            Json.AssertError(refused, JsonNode.Parse(await refused.Content.ReadAsStringAsync())!, 429, "rate_limit_error", code: "concurrency_limit_exceeded");
            Assert.NotNull(refused.Headers.RetryAfter);
            // Another key is not held up by this one.
            Assert.Equal(HttpStatusCode.OK, (await client.SendAsync(Get("/v1/models", SecuredServer.BothKey))).StatusCode);
        }
        // Once the stream is dropped its permit returns.
        HttpStatusCode after = HttpStatusCode.TooManyRequests;
        for (int i = 0; i < 200 && after == HttpStatusCode.TooManyRequests; i++)
        {
            after = (await client.SendAsync(Get("/v1/models", SecuredServer.InferenceKey))).StatusCode;
            if (after == HttpStatusCode.TooManyRequests) await Task.Delay(50);
        }
        Assert.Equal(HttpStatusCode.OK, after);
    }

    [Fact]
    public async Task Timeout_GenerationOverTimeLimit_504InErrorShape()
    {
        await using var factory = new QuantServeFactory(new() { ["QuantServe:Limits:RequestTimeoutSeconds"] = "0.3", ["QuantServe:MaxBatch"] = "64" });
        using var client = factory.CreateClient();
        await factory.WaitReadyAsync();
        // 64 choices of 400 tokens each: seconds of decoding, far past the limit.
        var started = DateTime.UtcNow;
        var (r, body) = await Json.PostAsync(client, "/v1/completions", new { model = "stories260K", prompt = "Once", n = 64, max_tokens = 400, temperature = 1 });
        Json.AssertError(r, body, 504, "server_error", code: "request_timeout");
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(10), "the request was not cut off near its time limit");
        // A short request still fits in the limit.
        (r, _) = await Json.PostAsync(client, "/v1/completions", new { model = "stories260K", prompt = "Once", max_tokens = 1 });
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
    }

    [Theory]
    [InlineData("/v1/completions")]
    [InlineData("/quantize")]
    public async Task Body_OverLimit_413InRouteShape(string path)
    {
        await using var factory = new QuantServeFactory(new() { ["QuantServe:Limits:MaxRequestBodyBytes"] = "1024" });
        using var client = factory.CreateClient();
        string json = $$"""{"model":"stories260K","prompt":"{{new string('a', 4000)}}","method":"int8"}""";
        var r = await client.PostAsync(path, new StringContent(json, Encoding.UTF8, "application/json"));
        string text = await r.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, r.StatusCode);
        if (path.StartsWith("/v1", StringComparison.Ordinal))
            Json.AssertError(r, JsonNode.Parse(text)!, 413, "invalid_request_error", code: "request_too_large");
        else
            Assert.Equal("application/problem+json", r.Content.Headers.ContentType?.MediaType);
        // A body within the limit still works.
        var ok = await client.PostAsync("/v1/completions", new StringContent("""{"model":"stories260K","prompt":"Hi","max_tokens":1}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
    }

    [Theory]
    [InlineData("/v1/completions")]
    [InlineData("/quantize")]
    public async Task Body_ChunkedOverLimit_413WhileReading(string path)
    {
        // No Content-Length: only the server's own limit, met while the body is read, can stop it.
        await using var factory = new QuantServeFactory(new() { ["QuantServe:Limits:MaxRequestBodyBytes"] = "1024" });
        using var client = Kestrel(factory);
        string json = $$"""{"model":"stories260K","prompt":"{{new string('a', 8000)}}","method":"int8"}""";
        var content = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes(json)));
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = content };
        request.Headers.TransferEncodingChunked = true;
        var r = await client.SendAsync(request);
        string text = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == HttpStatusCode.RequestEntityTooLarge, $"{(int)r.StatusCode} {text}");
        if (path.StartsWith("/v1", StringComparison.Ordinal))
            Json.AssertError(r, JsonNode.Parse(text)!, 413, "invalid_request_error");
        else
            Assert.Equal("application/problem+json", r.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task MaxTokens_AboveBound_400NamingTheField()
    {
        await using var factory = new QuantServeFactory(new() { ["QuantServe:Limits:MaxTokens"] = "100" });
        using var client = factory.CreateClient();
        var (r, body) = await Json.PostAsync(client, "/v1/completions", new { model = "stories260K", prompt = "Hi", max_tokens = 101 });
        Json.AssertError(r, body, 400, "invalid_request_error", "max_tokens", "max_tokens_exceeded");
        (r, body) = await Json.PostAsync(client, "/v1/chat/completions",
            new { model = "stories260K", messages = new[] { new { role = "user", content = "Hi" } }, max_completion_tokens = 5000 });
        Json.AssertError(r, body, 400, "invalid_request_error", "max_completion_tokens", "max_tokens_exceeded");
        (r, _) = await Json.PostAsync(client, "/v1/completions", new { model = "stories260K", prompt = "Hi", max_tokens = 100, temperature = 0 });
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
    }

    [Fact]
    public async Task Context_PromptPlusMaxTokensOverContext_400ContextLengthExceeded()
    {
        await using var factory = new QuantServeFactory(new() { ["QuantServe:MaxContext"] = "64" });
        using var client = factory.CreateClient();
        await factory.WaitReadyAsync();
        var (r, body) = await Json.PostAsync(client, "/v1/completions", new { model = "stories260K", prompt = Enumerable.Range(1, 60).ToArray(), max_tokens = 10 });
        Json.AssertError(r, body, 400, "invalid_request_error", code: "context_length_exceeded");
        Assert.Contains("64", (string?)body["error"]!["message"]);
    }
}
