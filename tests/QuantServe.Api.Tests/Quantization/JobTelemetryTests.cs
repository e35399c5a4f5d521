using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json.Nodes;
using QuantServe.Api.Telemetry;

namespace QuantServe.Api.Tests.Quantization;

/// <summary>Issue 6's remaining observable items: a span per job stage, and paging of GET /quantize.</summary>
public sealed class JobTelemetryTests
{
    [Fact]
    public async Task Job_EveryStage_RecordedAsSpanWithJobTags()
    {
        var spans = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == QuantServeTelemetry.Name,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);
        string data = JobHost.NewDataDirectory();
        try
        {
            await using var host = new JobHost(data);
            string id = await host.SubmitAsync(new { model = "stories260K", method = "int8", context = 32, eval_tokens = 64 });
            var (job, _) = await host.WaitAsync(id);
            Assert.True((string?)job["status"] == "succeeded", job.ToJsonString());

            var mine = spans.Where(a => (string?)a.GetTagItem("quantserve.job.id") == id).ToList();
            Assert.Equal(["quantize load", "quantize quantize", "quantize evaluate", "quantize layers"], mine.Select(a => a.DisplayName));
            Assert.All(mine, a =>
            {
                Assert.Equal("stories260K", a.GetTagItem("quantserve.model"));
                Assert.Equal("int8", a.GetTagItem("quantserve.quantization.method"));
                Assert.Equal(a.DisplayName["quantize ".Length..], a.GetTagItem("quantserve.job.stage"));
                Assert.True(a.Duration > TimeSpan.Zero);
            });
        }
        finally { JobHost.DeleteDirectory(data); }
    }

    [Fact]
    public async Task List_OffsetAndLimit_PagesNewestFirst()
    {
        string data = JobHost.NewDataDirectory();
        try
        {
            await using var host = new JobHost(data, new() { ["QuantServe:Jobs:Concurrency"] = "0" });
            var ids = new List<string>();
            foreach (var m in new[] { "int8", "int4-g32", "nf4" })
            {
                ids.Add(await host.SubmitAsync(new { model = "stories260K", method = m }));
                await Task.Delay(20); // distinct creation times
            }
            var first = JsonNode.Parse(await host.Client.GetStringAsync("/quantize?offset=0&limit=2"))!;
            var second = JsonNode.Parse(await host.Client.GetStringAsync("/quantize?offset=2&limit=2"))!;
            Assert.Equal(3, (long)first["total"]!);
            Assert.Equal([ids[2], ids[1]], first["data"]!.AsArray().Select(j => (string)j!["id"]!));
            Assert.Equal([ids[0]], second["data"]!.AsArray().Select(j => (string)j!["id"]!));
            foreach (var bad in new[] { "offset=-1", "limit=0", "limit=201" })
                Assert.Equal(System.Net.HttpStatusCode.BadRequest, (await host.Client.GetAsync("/quantize?" + bad)).StatusCode);
        }
        finally { JobHost.DeleteDirectory(data); }
    }
}
