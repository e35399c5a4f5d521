using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using QuantServe.Api.Registry;
using QuantServe.Api.Serving;
using QuantServe.Api.Tests.Quantization;
using QuantServe.Api.Tests.TestSupport;

namespace QuantServe.Api.Tests.Reliability;

/// <summary>A client that hangs up mid-stream gives its batch slot to the next waiting request at once.</summary>
public sealed class ClientDisconnectTests
{
    private const string Model = "prose-15m-f16";

    private static HttpRequestMessage Stream(int maxTokens) => new(HttpMethod.Post, "/v1/completions")
    {
        // End-of-sequence is banned so a long request really runs max_tokens steps.
        Content = new StringContent(JsonSerializer.Serialize(new
        {
            model = Model, prompt = "The", max_tokens = maxTokens, stream = true, temperature = 0.8, seed = 1,
            logit_bias = new Dictionary<string, float> { ["2"] = -100 },
        }), Encoding.UTF8, "application/json"),
    };

    private static async Task<StreamReader> OpenAsync(HttpClient client, HttpRequestMessage request, CancellationToken cancel)
    {
        var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancel);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return new StreamReader(await response.Content.ReadAsStreamAsync(cancel));
    }

    private static async Task<string> FirstDataAsync(StreamReader reader, CancellationToken cancel)
    {
        while (await reader.ReadLineAsync(cancel) is { } line)
            if (line.StartsWith("data: ", StringComparison.Ordinal)) return line;
        throw new InvalidOperationException("the stream ended before its first event");
    }

    private static async Task<bool> ReadToDoneAsync(StreamReader reader, CancellationToken cancel)
    {
        while (await reader.ReadLineAsync(cancel) is { } line)
            if (line == "data: [DONE]") return true;
        return false;
    }

    [Fact(Timeout = 300_000)]
    public async Task Disconnect_AllSlotsBusy_QueuedRequestRunsBeforeTheOtherLongRequestEnds()
    {
        await using var factory = new QuantServeFactory(new()
        {
            ["QuantServe:ModelsDirectory"] = JobHost.ProseGgufDir,
            ["QuantServe:DataDirectory"] = JobHost.NewDataDirectory(),
            ["QuantServe:Jobs:Concurrency"] = "0",
            ["QuantServe:MaxBatch"] = "2",
            ["QuantServe:MaxQueue"] = "4",
        });
        factory.UseKestrel(o => o.Listen(IPAddress.Loopback, 0));
        factory.StartServer();
        var address = new Uri(factory.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        using var client = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromMinutes(3) };
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));

        // Two long streams fill both slots.
        using var hangUp = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token);
        var a = await OpenAsync(client, Stream(500), hangUp.Token);
        using var bStop = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token);
        var b = await OpenAsync(client, Stream(500), bStop.Token);
        await FirstDataAsync(a, timeout.Token);
        await FirstDataAsync(b, timeout.Token);
        var registry = factory.Services.GetRequiredService<ModelRegistry>();
        var scheduler = factory.Services.GetRequiredService<SchedulerPool>().Find(registry.Find(Model)!.Model!)!;
        Assert.Equal(2, scheduler.Running);
        var bDone = ReadToDoneAsync(b, bStop.Token);

        // A third one has to wait.
        var cOpen = OpenAsync(client, Stream(4), timeout.Token);
        for (int i = 0; i < 2000 && scheduler.Waiting == 0 && !cOpen.IsCompleted; i++) await Task.Delay(5);
        Assert.False(bDone.IsCompleted, "the long request ended before the test could disconnect; it must outlast the short one");
        Assert.Equal(1, scheduler.Waiting);

        // The first client hangs up; the waiting request takes its slot and finishes while the other long one still runs.
        hangUp.Cancel();
        a.Dispose();
        var c = await cOpen;
        Assert.True(await ReadToDoneAsync(c, timeout.Token));
        Assert.False(bDone.IsCompleted, "the waiting request only ran after the long requests ended: the disconnected client kept its slot");
        // The other long client leaves too: the batch empties.
        bStop.Cancel();
        b.Dispose();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => bDone);
        for (int i = 0; i < 1000 && scheduler.Running > 0; i++) await Task.Delay(10);
        Assert.Equal((0, 0), (scheduler.Running, scheduler.Waiting));
    }
}
