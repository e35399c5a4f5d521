using Microsoft.Extensions.DependencyInjection;
using QuantServe.Api.Registry;
using QuantServe.Api.Serving;
using QuantServe.Api.Tests.TestSupport;

namespace QuantServe.Api.Tests.Serving;

public sealed class BatchSchedulerTests
{
    [Fact]
    public async Task Stream_ClientDisconnects_SequenceLeavesTheBatch()
    {
        await using var factory = new QuantServeFactory();
        using var client = factory.CreateClient();
        await factory.WaitReadyAsync();
        // The engine's 8th step waits until the client has gone, so the test does not depend on how fast 500 tokens are
        // generated (the whole request once finished before the disconnect was seen).
        using var held = new HeldEngine.Gate(holdAtStep: 8);
        factory.Services.GetRequiredService<ServingDevice>().EngineWrapper = e => new HeldEngine(e, held);
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = System.Net.Http.Json.JsonContent.Create(new { model = "stories260K", prompt = "Once upon a time", max_tokens = 500, stream = true, logit_bias = new Dictionary<string, float> { ["2"] = -100 } }),
        };
        using var cts = new CancellationTokenSource();
        var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cts.Token);
        var stream = await response.Content.ReadAsStreamAsync(cts.Token);
        var reader = new StreamReader(stream);
        Assert.StartsWith("data: ", await reader.ReadLineAsync(cts.Token));
        Assert.True(held.Reached.Wait(TimeSpan.FromSeconds(30)), "the engine never reached the held step");

        var registry = factory.Services.GetRequiredService<ModelRegistry>();
        var pool = factory.Services.GetRequiredService<SchedulerPool>();
        var scheduler = pool.Find(registry.Find("stories260K")!.Model!)!;
        Assert.Equal(1, scheduler.Running);
        cts.Cancel();
        response.Dispose();
        held.Release();
        for (int i = 0; i < 3000 && scheduler.Running > 0; i++) await Task.Delay(10);
        Assert.Equal(0, scheduler.Running);
        // It left at the disconnect: a step or two after the held one, far from the 500 tokens it asked for.
        Assert.InRange(scheduler.GeneratedTokens, 1, 12);
    }

    /// <summary>An engine whose n-th step blocks until released (see <see cref="ServingDevice.EngineWrapper"/>).</summary>
    private sealed class HeldEngine(IBatchEngine inner, HeldEngine.Gate gate) : IBatchEngine
    {
        public sealed class Gate(int holdAtStep) : IDisposable
        {
            private readonly ManualResetEventSlim _release = new();
            private int _steps;
            public ManualResetEventSlim Reached { get; } = new();
            public void Release() => _release.Set();
            public void Step()
            {
                if (Interlocked.Increment(ref _steps) != holdAtStep) return;
                Reached.Set();
                _release.Wait(TimeSpan.FromSeconds(60));
            }
            public void Dispose() { _release.Set(); _release.Dispose(); Reached.Dispose(); }
        }

        public string Device => inner.Device;
        public bool SamplesOnEngine => inner.SamplesOnEngine;
        public long CacheBytes(int capacity) => inner.CacheBytes(capacity);
        public IEngineCache CreateCache(int capacity) => inner.CreateCache(capacity);
        public void Step(ReadOnlySpan<EngineChunk> chunks, ReadOnlySpan<TokenPick> picks, Span<float> logits, Span<int> tokens)
        {
            gate.Step();
            inner.Step(chunks, picks, logits, tokens);
        }
        public void ForwardAll(IEngineCache cache, ReadOnlyMemory<int> tokens, Span<float> logits) => inner.ForwardAll(cache, tokens, logits);
        public int MaxPiece => inner.MaxPiece;
        public long ResidentBytes => inner.ResidentBytes;
        public void Dispose() => inner.Dispose();
    }

    [Fact]
    public async Task Submit_MoreSequencesThanMaxBatch_AllFinishWithTheirOwnText()
    {
        // MaxBatch 2 forces sequences to queue and join the batch as others leave.
        await using var factory = new QuantServeFactory(new() { ["QuantServe:MaxBatch"] = "2" });
        using var client = factory.CreateClient();
        await factory.WaitReadyAsync();
        async Task<string> Complete(int seed)
        {
            var (_, body) = await Json.PostAsync(client, "/v1/completions", new { model = "stories260K", prompt = "Once", max_tokens = 12, seed, temperature = 1 });
            return (string)body["choices"]![0]!["text"]!;
        }
        var alone = new List<string>();
        for (int i = 0; i < 6; i++) alone.Add(await Complete(i));
        var together = await Task.WhenAll(Enumerable.Range(0, 6).Select(Complete));
        Assert.Equal(alone, together);
    }
}
