using QuantServe.Engine.Tests.TestSupport;
using System.Collections.Concurrent;
using System.Net;
using Microsoft.Extensions.Logging;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using QuantServe.Api.Serving;
using QuantServe.Api.Tests.TestSupport;

namespace QuantServe.Api.Tests.Serving;

public sealed class ServingDeviceTests
{
    private sealed class LogLines : ILoggerProvider
    {
        public ConcurrentQueue<(string Category, string Message)> Lines { get; } = new();
        public ILogger CreateLogger(string categoryName) => new Logger(categoryName, this);
        public void Dispose() { }

        private sealed class Logger(string category, LogLines owner) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
            public bool IsEnabled(LogLevel logLevel) => true;
            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
                => owner.Lines.Enqueue((category, formatter(state, exception)));
        }
    }

    [Fact]
    public async Task Start_DeviceAuto_ReportsTheDeviceItChose()
    {
        var logs = new LogLines();
        await using var factory = new QuantServeFactory(new() { ["Logging:LogLevel:QuantServe"] = "Information" },
            services => services.AddSingleton<ILoggerProvider>(logs));
        using var client = factory.CreateClient();
        await factory.WaitReadyAsync();
        var live = JsonNode.Parse(await client.GetStringAsync("/health/live"))!;
        var ready = JsonNode.Parse(await client.GetStringAsync("/health/ready"))!;
        var model = JsonNode.Parse(await client.GetStringAsync("/v1/models/stories260K"))!;
        // Without a CUDA driver (CI) auto falls back to the CPU; with one it takes cuda:0.
        string expected = GpuFactAttribute.Available ? "cuda:0" : "cpu";
        Assert.Equal(expected, (string?)live["device"]);
        Assert.Equal(expected, (string?)ready["device"]);
        Assert.Equal(expected, (string?)model["device"]);
        Assert.False(string.IsNullOrWhiteSpace((string?)live["device_name"]));
        // One line says what was chosen and, on fallback, why.
        var line = Assert.Single(logs.Lines, l => l.Category == typeof(ServingDevice).FullName).Message;
        Assert.StartsWith(GpuFactAttribute.Available ? "Serving device: cuda:0" : "Serving device: cpu (no CUDA", line);
    }

    [Fact]
    public async Task Start_DeviceCpu_ServesOnTheCpu()
    {
        await using var factory = new QuantServeFactory(new() { ["QuantServe:Device"] = "CPU" });
        using var client = factory.CreateClient();
        await factory.WaitReadyAsync();
        var (response, body) = await Json.PostAsync(client, "/v1/completions", new { model = "stories260K", prompt = "Once upon a time", max_tokens = 8, temperature = 0 });
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.False(string.IsNullOrEmpty((string?)body["choices"]![0]!["text"]));
        Assert.Equal("cpu", factory.Services.GetRequiredService<ServingDevice>().Name);
        var models = JsonNode.Parse(await client.GetStringAsync("/v1/models"))!["data"]!.AsArray();
        Assert.Equal("cpu", (string?)models.Single(m => (string?)m!["id"] == "stories260K")!["device"]);
    }

    [Fact]
    public async Task Start_CudaDeviceThatCannotOpen_FailsNamingTheSetting()
    {
        // No machine has 1000 CUDA devices: with or without a driver the explicit device cannot be opened, and the server
        // refuses to start instead of silently serving on the CPU.
        await using var factory = new QuantServeFactory(new() { ["QuantServe:Device"] = "cuda:999" });
        var e = Assert.ThrowsAny<Exception>(() => factory.CreateClient());
        var error = Unwrap<InvalidOperationException>(e);
        Assert.Contains("QuantServe:Device=cuda:999", error.Message);
        Assert.Contains("auto", error.Message);
    }

    [Fact]
    public async Task Start_MalformedDevice_FailsListingTheAcceptedForms()
    {
        await using var factory = new QuantServeFactory(new() { ["QuantServe:Device"] = "tpu" });
        var e = Assert.ThrowsAny<Exception>(() => factory.CreateClient());
        var error = Unwrap<InvalidOperationException>(e);
        Assert.StartsWith("QuantServe:Device:", error.Message);
        Assert.Contains("auto, cpu, cuda, cuda:N", error.Message);
    }

    [Fact]
    public async Task Complete_CacheBudgetBelowOneSequence_Returns503InOpenAiShape()
    {
        await using var factory = new QuantServeFactory(new() { ["QuantServe:KvCacheBudgetBytes"] = "1000" });
        using var client = factory.CreateClient();
        await factory.WaitReadyAsync();
        var (response, body) = await Json.PostAsync(client, "/v1/completions", new { model = "stories260K", prompt = "Once upon a time", max_tokens = 8 });
        Json.AssertError(response, body, 503, "server_error", code: "insufficient_device_memory");
        Assert.NotNull(response.Headers.RetryAfter);
        Assert.Contains("KvCacheBudgetBytes", (string?)body["error"]!["message"]);
        // The refusal left nothing behind: a normal server answers the same request.
        await using var roomy = new QuantServeFactory();
        using var other = roomy.CreateClient();
        await roomy.WaitReadyAsync();
        Assert.Equal(HttpStatusCode.OK, (await Json.PostAsync(other, "/v1/completions", new { model = "stories260K", prompt = "Once upon a time", max_tokens = 8 })).Response.StatusCode);
    }

    [Fact]
    public async Task Complete_CacheBudgetForOneSequence_OthersWaitAndAllFinishWithTheirOwnText()
    {
        // stories260K: 5 layers × kv_dim 32 × F32 keys and values = 1,280 bytes per position; 256 positions fit, 512 do not.
        await using var factory = new QuantServeFactory(new() { ["QuantServe:KvCacheBudgetBytes"] = (256 * 1280).ToString() });
        using var client = factory.CreateClient();
        await factory.WaitReadyAsync();
        string[] prompts = ["Once upon a time", "The cat", "Tom and Lily went", "One day, a little bird"];
        async Task<string> Complete(string prompt)
        {
            var (response, body) = await Json.PostAsync(client, "/v1/completions", new { model = "stories260K", prompt, max_tokens = 24, temperature = 0 });
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            return (string)body["choices"]![0]!["text"]!;
        }
        var alone = new List<string>();
        foreach (var p in prompts) alone.Add(await Complete(p));
        var together = await Task.WhenAll(prompts.Select(Complete));
        Assert.Equal(alone, together);
        var pool = factory.Services.GetRequiredService<SchedulerPool>();
        var registry = factory.Services.GetRequiredService<QuantServe.Api.Registry.ModelRegistry>();
        var scheduler = pool.Find(registry.Find("stories260K")!.Model!)!;
        Assert.InRange(scheduler.CacheBytes, 1, 256 * 1280);
    }

    private static T Unwrap<T>(Exception e) where T : Exception
    {
        for (Exception? x = e; x is not null; x = x.InnerException)
            if (x is T t) return t;
        if (e is AggregateException a)
            foreach (var inner in a.InnerExceptions)
                if (inner is T t) return t;
        throw new Xunit.Sdk.XunitException($"no {typeof(T).Name} in {e}");
    }
}
