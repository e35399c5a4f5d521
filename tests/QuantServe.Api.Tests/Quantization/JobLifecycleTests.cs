using System.Net;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using QuantServe.Api.Quantization;

namespace QuantServe.Api.Tests.Quantization;

public sealed class JobLifecycleTests
{
    [Fact]
    public async Task Restart_FiveQueuedOneInterrupted_AllSucceedOnNewHost()
    {
        string data = JobHost.NewDataDirectory();
        try
        {
            var ids = new List<string>();
            string[] methods = ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1"];
            await using (var paused = new JobHost(data, new() { ["QuantServe:Jobs:Concurrency"] = "0" }))
            {
                foreach (var m in methods) ids.Add(await paused.SubmitAsync(QuantizeEndpointTests.ShortJob(m)));
                // As a crash would leave it: one job marked running, with a half-written artifact.
                var store = paused.Factory.Services.GetRequiredService<JobStore>();
                Assert.True(store.TryStart(ids[0], DateTimeOffset.UtcNow));
                Directory.CreateDirectory(Path.Combine(data, "models"));
                await File.WriteAllBytesAsync(Path.Combine(data, "models", JobRunner.PartialPrefix + ids[0] + ".gguf"), new byte[1000]);
                Assert.Equal("running", (string?)(await paused.GetAsync(ids[0]))["status"]);
                Assert.Equal("queued", (string?)(await paused.GetAsync(ids[4]))["status"]);
            }

            await using var host = new JobHost(data, new() { ["QuantServe:Jobs:Concurrency"] = "2" });
            foreach (var (id, method) in ids.Zip(methods))
            {
                var (job, _) = await host.WaitAsync(id);
                Assert.True((string?)job["status"] == "succeeded", job.ToJsonString());
                Assert.Equal($"prose-15m-f16:{method.ToLowerInvariant()}", (string?)job["result"]!["model_id"]);
            }
            Assert.Empty(Directory.GetFiles(Path.Combine(data, "models"), ".partial-*"));
            var models = JsonNode.Parse(await host.Client.GetStringAsync("/v1/models"))!["data"]!.AsArray().Select(m => (string?)m!["id"]).ToList();
            foreach (var m in methods) Assert.Contains($"prose-15m-f16:{m.ToLowerInvariant()}", models);
        }
        finally { JobHost.DeleteDirectory(data); }
    }

    [Fact]
    public async Task Cancel_QueuedAndRunning_CancelledWithoutArtifacts()
    {
        string data = JobHost.NewDataDirectory();
        try
        {
            await using var host = new JobHost(data);
            // A long evaluation keeps the first job running while we cancel it.
            string longText = await File.ReadAllTextAsync(QuantServe.Api.Tests.TestSupport.SharedAssets.Path("eval", "bible.txt"));
            string running = await host.SubmitAsync(new { model = "prose-15m-f16", method = "Q8_0", context = 64, eval_tokens = 100000, eval_text = longText });
            string queued = await host.SubmitAsync(QuantizeEndpointTests.ShortJob("Q4_0"));

            var r = await host.Client.DeleteAsync($"/quantize/{queued}");
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            Assert.Equal("cancelled", (string?)(await host.GetAsync(queued))["status"]);

            for (int i = 0; i < 600 && (string?)(await host.GetAsync(running))["status"] != "running"; i++) await Task.Delay(50);
            Assert.Equal("running", (string?)(await host.GetAsync(running))["status"]);
            r = await host.Client.DeleteAsync($"/quantize/{running}");
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            var (job, _) = await host.WaitAsync(running);
            Assert.Equal("cancelled", (string?)job["status"]);
            Assert.Null(job["result"]);

            // The worker lets go of the job and removes its partial artifact.
            var queue = host.Factory.Services.GetRequiredService<JobQueue>();
            for (int i = 0; i < 600 && queue.CancelRunning(running); i++) await Task.Delay(50);
            Assert.Empty(Directory.GetFiles(Path.Combine(data, "models"), ".partial-*"));
            Assert.Empty(Directory.GetFiles(Path.Combine(data, "models"), "*.gguf"));

            r = await host.Client.DeleteAsync($"/quantize/{running}");
            Assert.Equal(HttpStatusCode.Conflict, r.StatusCode);
        }
        finally { JobHost.DeleteDirectory(data); }
    }

    [Fact]
    [Trait("Category", "Slow")]
    public async Task Submit_TenConcurrent_AllSucceed()
    {
        string data = JobHost.NewDataDirectory();
        try
        {
            await using var host = new JobHost(data, new() { ["QuantServe:Jobs:Concurrency"] = "2" });
            string[] methods = ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"];
            var ids = await Task.WhenAll(methods.Select(m => host.SubmitAsync(QuantizeEndpointTests.ShortJob(m))));
            Assert.Equal(10, ids.Distinct().Count());
            foreach (var id in ids)
            {
                var (job, _) = await host.WaitAsync(id, TimeSpan.FromMinutes(10));
                Assert.True((string?)job["status"] == "succeeded", job.ToJsonString());
            }
        }
        finally { JobHost.DeleteDirectory(data); }
    }
}
