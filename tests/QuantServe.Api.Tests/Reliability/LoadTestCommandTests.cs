using System.Text.Json.Nodes;
using QuantServe.Api.Cli;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using QuantServe.Api.Reliability;
using QuantServe.Api.Tests.TestSupport;

namespace QuantServe.Api.Tests.Reliability;

/// <summary>A short version of the 64 × 60 s load run: the real server on a loopback port, 16 clients for 8 seconds.</summary>
public sealed class LoadTestCommandTests
{
    [Fact]
    public async Task LoadTest_SixteenClientsEightSeconds_NoErrorsAndCompleteReport()
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = await CliApp.RunAsync(["load-test", "--clients", "16", "--duration", "8", "--stream-ratio", "0.5", "--warmup", "2", "--json"], output, error);
        Assert.True(code == 0, $"exit {code}\n{output}\n{error}");
        var r = JsonNode.Parse(output.ToString())!;

        Assert.Equal(0, (long)r["errors"]!);
        Assert.Empty(r["errors_by_kind"]!.AsObject());
        long requests = (long)r["requests"]!, streamed = (long)r["streamed"]!;
        // 16 clients each finish several requests in 8 s; both kinds occur with ratio 0.5.
        Assert.True(requests >= 32, $"only {requests} requests");
        Assert.InRange(streamed, 1, requests - 1);
        Assert.Equal(16, (int)r["clients"]!);
        Assert.True((double)r["elapsed_seconds"]! >= 8);

        var latency = r["latency_ms"]!;
        Assert.Equal(requests, (long)latency["count"]!);
        double p50 = (double)latency["p50"]!, p90 = (double)latency["p90"]!, p99 = (double)latency["p99"]!, max = (double)latency["max"]!;
        Assert.True(0 < p50 && p50 <= p90 && p90 <= p99 && p99 <= max, latency.ToJsonString());
        var ttft = r["time_to_first_token_ms"]!;
        Assert.InRange((long)ttft["count"]!, 1, streamed);
        Assert.True((double)ttft["p50"]! <= (double)ttft["p99"]!);
        // A stream's first token cannot come after the slowest complete request.
        Assert.True((double)ttft["p99"]! <= max);

        long tokens = (long)r["completion_tokens"]!;
        Assert.True(tokens >= requests, "every request asks for at least 8 tokens and most get them");
        Assert.Equal(tokens / (double)r["elapsed_seconds"]!, (double)r["tokens_per_second"]!, 6);

        var memory = r["memory"]!;
        Assert.InRange((int)memory["samples"]!, 2, 8); // one a second after the 2 s warm-up; a starved timer may skip ticks
        Assert.True((double)memory["first_half"]!["working_set_mb"]! > 10);
        Assert.True((double)memory["second_half"]!["gc_heap_mb"]! > 0);
        Assert.NotNull(memory["flat"]);
        Assert.Equal((int)memory["samples"]!, memory["series"]!.AsArray().Count);
    }

    [Fact]
    public async Task LoadTest_UnreachableUrl_CountsConnectionErrorsAndExitsThree()
    {
        // A port nobody listens on: every request fails fast with a connection error, and the report says so.
        var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        int port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        var output = new StringWriter();
        int code = await CliApp.RunAsync(["load-test", "--url", $"http://127.0.0.1:{port}", "--model-id", "x", "--clients", "2", "--duration", "1", "--json"], output, new StringWriter());
        Assert.Equal(3, code);
        var r = JsonNode.Parse(output.ToString())!;
        Assert.Equal((long)r["requests"]!, (long)r["errors"]!);
        Assert.Equal((long)r["errors"]!, (long)r["errors_by_kind"]!["connection"]!);
        Assert.Null(r["memory"]);
    }

    [Fact]
    public async Task LoadTest_ServerWithApiKeys_SucceedsWithKeyAndCounts401WithoutIt()
    {
        await using var factory = new QuantServeFactory(new()
        {
            ["QuantServe:Auth:Enabled"] = "true",
            ["QuantServe:Auth:Keys:0:Key"] = "sk-load-test-key",
            ["QuantServe:Auth:Keys:0:Name"] = "load",
            ["QuantServe:Auth:Keys:0:Scopes:0"] = "inference",
            ["QuantServe:Limits:RequestsPerWindow"] = "0",
        });
        factory.UseKestrel(o => o.Listen(System.Net.IPAddress.Loopback, 0));
        factory.StartServer();
        string url = factory.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        await factory.WaitReadyAsync();
        string[] common = ["load-test", "--url", url, "--clients", "4", "--duration", "2", "--json"];

        var output = new StringWriter();
        int code = await CliApp.RunAsync([.. common, "--api-key", "sk-load-test-key"], output, new StringWriter());
        var r = JsonNode.Parse(output.ToString())!;
        Assert.True(code == 0, output.ToString());
        Assert.True((long)r["requests"]! > 0);
        Assert.Equal("stories260K", (string?)r["model"]);

        output = new StringWriter();
        Assert.Equal(3, await CliApp.RunAsync(common, output, new StringWriter()));
        r = JsonNode.Parse(output.ToString())!;
        Assert.Equal((long)r["requests"]!, (long)r["errors_by_kind"]!["http_401"]!);
    }

    [Fact]
    public void Percentiles_NearestRank_MatchesDefinition()
    {
        var values = Enumerable.Range(1, 100).Select(i => (double)(101 - i)).ToList();
        var p = Percentiles.Of(values);
        Assert.Equal((100, 50.0, 90.0, 99.0, 100.0), (p.Count, p.P50, p.P90, p.P99, p.Max));
        Assert.True(double.IsNaN(Percentiles.Of([]).P50));
    }

    [Fact]
    public void MemoryTrend_GrowingSecondHalf_IsNotFlat()
    {
        var flat = Enumerable.Range(0, 10).Select(i => new MemorySample(i, 100L << 20, 10L << 20)).ToList();
        Assert.True(MemoryTrend.From("p", flat, 0, 10)!.Flat);
        Assert.Null(MemoryTrend.From("p", flat.Take(1).ToList(), 0, 10));
        var growing = Enumerable.Range(0, 10).Select(i => new MemorySample(i, (100L + (i >= 5 ? 20 : 0)) << 20, 10L << 20)).ToList();
        var t = MemoryTrend.From("p", growing, 0, 10)!;
        Assert.False(t.Flat);
        Assert.Equal(20.0, t.WorkingSetGrowthPct, 6);
    }
}
