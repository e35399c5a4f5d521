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
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = System.Net.Http.Json.JsonContent.Create(new { model = "stories260K", prompt = "Once upon a time", max_tokens = 500, stream = true, logit_bias = new Dictionary<string, float> { ["2"] = -100 } }),
        };
        using var cts = new CancellationTokenSource();
        var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cts.Token);
        var stream = await response.Content.ReadAsStreamAsync(cts.Token);
        var reader = new StreamReader(stream);
        Assert.StartsWith("data: ", await reader.ReadLineAsync(cts.Token));

        var registry = factory.Services.GetRequiredService<ModelRegistry>();
        var pool = factory.Services.GetRequiredService<SchedulerPool>();
        var scheduler = pool.Find(registry.Find("stories260K")!.Model!)!;
        cts.Cancel();
        response.Dispose();
        for (int i = 0; i < 3000 && scheduler.Running > 0; i++) await Task.Delay(10);
        Assert.Equal(0, scheduler.Running);
        // It left early: far fewer than the 500 tokens it asked for were generated.
        Assert.InRange(scheduler.GeneratedTokens, 1, 400);
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
