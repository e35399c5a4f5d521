using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using QuantServe.Api.Tests.TestSupport;

namespace QuantServe.Api.Tests.Quantization;

/// <summary>A real <c>quantserve</c> child process killed with SIGKILL while jobs are queued and one runs.</summary>
public sealed class CrashRecoveryTests
{
    [Fact]
    [Trait("Category", "Slow")]
    public async Task SigKill_FiveJobsQueued_AllSucceedAfterRestart()
    {
        string data = JobHost.NewDataDirectory();
        ChildServer? first = null, second = null;
        try
        {
            first = ChildServer.Start(data, JobHost.ProseGgufDir);
            var client = first.Client;
            await first.WaitAsync("/health/live");
            string[] methods = ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1"];
            var ids = new List<string>();
            foreach (var m in methods)
            {
                var r = await client.PostAsJsonAsync("/quantize", QuantizeEndpointTests.ShortJob(m));
                Assert.Equal(HttpStatusCode.Accepted, r.StatusCode);
                ids.Add((string)JsonNode.Parse(await r.Content.ReadAsStringAsync())!["id"]!);
            }
            for (int i = 0; i < 600; i++)
            {
                var j = JsonNode.Parse(await client.GetStringAsync($"/quantize/{ids[0]}"))!;
                if ((string?)j["status"] == "running" && (double)j["progress"]! > 0.1) break;
                await Task.Delay(50);
            }
            await first.KillAsync(); // SIGKILL: no shutdown hooks run

            second = ChildServer.Start(data, JobHost.ProseGgufDir);
            var client2 = second.Client;
            await second.WaitAsync("/health/live");
            var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(8);
            foreach (var id in ids)
            {
                while (true)
                {
                    var j = JsonNode.Parse(await client2.GetStringAsync($"/quantize/{id}"))!;
                    string? status = (string?)j["status"];
                    if (status is "succeeded") break;
                    Assert.True(status is "queued" or "running", j.ToJsonString());
                    Assert.True(DateTime.UtcNow < deadline, "jobs did not finish after the restart");
                    await Task.Delay(200);
                }
            }
            Assert.Empty(Directory.GetFiles(Path.Combine(data, "models"), ".partial-*"));
        }
        finally
        {
            foreach (var p in new[] { first, second })
                if (p is not null) await p.DisposeAsync();
            JobHost.DeleteDirectory(data);
        }
    }
}
