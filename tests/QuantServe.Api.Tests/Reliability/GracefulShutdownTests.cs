using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using QuantServe.Api.Tests.Quantization;
using QuantServe.Api.Tests.TestSupport;

namespace QuantServe.Api.Tests.Reliability;

/// <summary>SIGTERM: in-flight completions finish within QuantServe:ShutdownTimeoutSeconds, queued jobs stay queued.</summary>
public sealed class GracefulShutdownTests
{
    private static HttpRequestMessage Stream(int prompts, int maxTokens) => new(HttpMethod.Post, "/v1/completions")
    {
        Content = new StringContent(JsonSerializer.Serialize(new
        {
            model = "prose-15m-f16", prompt = Enumerable.Repeat("The", prompts).ToArray(), max_tokens = maxTokens, stream = true,
            temperature = 0.8, seed = 1, logit_bias = new Dictionary<string, float> { ["2"] = -100 },
        }), Encoding.UTF8, "application/json"),
    };

    /// <summary>Reads the stream to its end: (token events, finish reasons, whether data: [DONE] came).</summary>
    private static async Task<(int Tokens, int Finished, bool Done)> DrainAsync(StreamReader reader)
    {
        int tokens = 0, finished = 0;
        try
        {
            while (await reader.ReadLineAsync() is { } line)
            {
                if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
                if (line == "data: [DONE]") return (tokens, finished, true);
                var choice = JsonNode.Parse(line[6..])!["choices"]!.AsArray().FirstOrDefault();
                if (choice?["finish_reason"] is not null) finished++;
                else if (choice is not null) tokens++;
            }
        }
        catch (Exception e) when (e is IOException or HttpRequestException) { }
        return (tokens, finished, false);
    }

    private static async Task<StreamReader> StartStreamAsync(ChildServer server, int prompts, int maxTokens)
    {
        var response = await server.Client.SendAsync(Stream(prompts, maxTokens), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        while (await reader.ReadLineAsync() is { } line)
            if (line.StartsWith("data: ", StringComparison.Ordinal)) return reader;
        throw new InvalidOperationException("the stream ended before its first event");
    }

    [Fact(Timeout = 300_000)]
    public async Task SigTerm_WhileStreaming_StreamCompletesThenProcessExitsCleanly()
    {
        string data = JobHost.NewDataDirectory();
        try
        {
            await using var server = ChildServer.Start(data, JobHost.ProseGgufDir, ["--QuantServe:ShutdownTimeoutSeconds=120"]);
            await server.WaitAsync();
            var reader = await StartStreamAsync(server, prompts: 1, maxTokens: 300);
            server.Terminate();
            // The host is waiting for the stream, not exiting under it.
            await Task.Delay(300);
            Assert.False(server.Process.HasExited, server.Log);
            var (tokens, finished, done) = await DrainAsync(reader);
            Assert.True(done, $"the stream was cut off after {tokens} tokens:\n{server.Log}");
            Assert.Equal(1, finished);
            Assert.InRange(tokens, 290, 300);
            using var exit = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await server.Process.WaitForExitAsync(exit.Token);
            Assert.Equal(0, server.Process.ExitCode);
            // New connections are refused once the stop began.
            await Assert.ThrowsAsync<HttpRequestException>(() => server.Client.GetAsync("/health/live"));
        }
        finally
        {
            JobHost.DeleteDirectory(data);
        }
    }

    [Fact(Timeout = 300_000)]
    public async Task SigTerm_StreamLongerThanShutdownTimeout_ProcessExitsWithinTheBound()
    {
        string data = JobHost.NewDataDirectory();
        try
        {
            await using var server = ChildServer.Start(data, JobHost.ProseGgufDir, ["--QuantServe:ShutdownTimeoutSeconds=1", "--QuantServe:MaxBatch=32"]);
            await server.WaitAsync();
            // 32 × 500 tokens of a 15M-parameter model: seconds of work even on a fast machine.
            var reader = await StartStreamAsync(server, prompts: 32, maxTokens: 500);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            server.Terminate();
            var drained = DrainAsync(reader);
            using var exit = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await server.Process.WaitForExitAsync(exit.Token);
            var (_, finished, done) = await drained;
            Assert.False(done && finished == 32, $"all 32 × 500 tokens finished within the 1 s shutdown timeout ({clock.Elapsed.TotalSeconds:F1} s)");
            Assert.Equal(0, server.Process.ExitCode);
        }
        finally
        {
            JobHost.DeleteDirectory(data);
        }
    }

    [Fact(Timeout = 300_000)]
    public Task SigTerm_JobsQueuedAndRunning_BothQueuedAfterRestart() => JobsSurviveSigTermAsync(runAfterRestart: false);

    [Fact(Timeout = 600_000)]
    [Trait("Category", "Slow")]
    public Task SigTerm_JobsQueuedAndRunning_StayInDatabaseAndRunAfterRestart() => JobsSurviveSigTermAsync(runAfterRestart: true);

    /// <summary>SIGTERM while one job runs and one waits; the restarted server either holds both as queued (jobs
    /// paused: the interrupted one was put back, nothing ran) or runs both to success.</summary>
    private static async Task JobsSurviveSigTermAsync(bool runAfterRestart)
    {
        string data = JobHost.NewDataDirectory();
        try
        {
            var ids = new List<string>();
            await using (var first = ChildServer.Start(data, JobHost.ProseGgufDir))
            {
                await first.WaitAsync("/health/live");
                foreach (var method in new[] { "Q8_0", "Q4_0" })
                {
                    var r = await first.Client.PostAsJsonAsync("/quantize", QuantizeEndpointTests.ShortJob(method));
                    Assert.Equal(HttpStatusCode.Accepted, r.StatusCode);
                    ids.Add((string)JsonNode.Parse(await r.Content.ReadAsStringAsync())!["id"]!);
                }
                string? status = null;
                for (int i = 0; i < 1200 && status != "running"; i++)
                {
                    status = (string?)JsonNode.Parse(await first.Client.GetStringAsync($"/quantize/{ids[0]}"))!["status"];
                    if (status != "running") await Task.Delay(50);
                }
                Assert.Equal("running", status);
                first.Terminate();
                using var exit = new CancellationTokenSource(TimeSpan.FromSeconds(60));
                await first.Process.WaitForExitAsync(exit.Token);
                Assert.Equal(0, first.Process.ExitCode);
            }
            Assert.Empty(Directory.GetFiles(Path.Combine(data, "models"), ".partial-*"));

            await using var second = ChildServer.Start(data, JobHost.ProseGgufDir, [$"--QuantServe:Jobs:Concurrency={(runAfterRestart ? 1 : 0)}"]);
            await second.WaitAsync("/health/live");
            if (!runAfterRestart)
            {
                // The interrupted job is re-queued when the worker starts.
                for (int i = 0; i < 600; i++)
                {
                    var j = JsonNode.Parse(await second.Client.GetStringAsync($"/quantize/{ids[0]}"))!;
                    if ((string?)j["status"] == "queued") break;
                    await Task.Delay(50);
                }
                foreach (var id in ids)
                {
                    var j = JsonNode.Parse(await second.Client.GetStringAsync($"/quantize/{id}"))!;
                    Assert.True((string?)j["status"] == "queued" && (double)j["progress"]! == 0, j.ToJsonString());
                }
                return;
            }
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(240);
            foreach (var id in ids)
                while (true)
                {
                    var j = JsonNode.Parse(await second.Client.GetStringAsync($"/quantize/{id}"))!;
                    string? status = (string?)j["status"];
                    if (status == "succeeded") break;
                    Assert.True(status is "queued" or "running", j.ToJsonString());
                    Assert.True(DateTime.UtcNow < deadline, "jobs did not run after the restart");
                    await Task.Delay(200);
                }
        }
        finally
        {
            JobHost.DeleteDirectory(data);
        }
    }
}
