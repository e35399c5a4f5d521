using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;
using QuantServe.Api.Tests.Quantization;
using QuantServe.Api.Tests.TestSupport;

namespace QuantServe.Api.Tests.Reliability;

/// <summary>
/// SIGKILL of a real server process in the middle of an upload, a quantization job and a burst of SQLite writes; a
/// second server over the same data directory must come up clean: no corrupt or half model registered, no accepted job
/// lost, no temporary files left.
/// </summary>
public sealed class SigKillTests
{
    /// <summary>A multipart body that sends the method field and the first part of a model file, then stalls (a slow
    /// client) until the server dies.</summary>
    private sealed class StalledUpload(string path, long bytes, string boundary) : HttpContent
    {
        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context)
            => SerializeToStreamAsync(stream, context, CancellationToken.None);

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellation)
        {
            var head = $"--{boundary}\r\nContent-Disposition: form-data; name=\"method\"\r\n\r\nQ8_0\r\n" +
                       $"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"killed-upload.gguf\"\r\n" +
                       "Content-Type: application/octet-stream\r\n\r\n";
            await stream.WriteAsync(Encoding.ASCII.GetBytes(head), cancellation);
            await using var file = File.OpenRead(path);
            var buffer = new byte[bytes];
            await file.ReadExactlyAsync(buffer, cancellation);
            await stream.WriteAsync(buffer, cancellation);
            await stream.FlushAsync(cancellation);
            await Task.Delay(Timeout.Infinite, cancellation);
        }

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }

    private static string ProseF16 => Path.Combine(JobHost.ProseGgufDir, "prose-15m-f16.gguf");

    private static async Task WaitForAsync(Func<bool> condition, string what, int seconds = 60)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(seconds);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}");
            await Task.Delay(50);
        }
    }

    [Fact(Timeout = 300_000)]
    public async Task SigKill_DuringUpload_RestartLeavesNoJobNoFilesNoModel()
    {
        string data = JobHost.NewDataDirectory();
        try
        {
            await using (var first = ChildServer.Start(data, JobHost.ProseGgufDir))
            {
                await first.WaitAsync("/health/live");
                using var content = new StalledUpload(ProseF16, 1 << 20, "killboundary");
                content.Headers.TryAddWithoutValidation("Content-Type", "multipart/form-data; boundary=killboundary");
                using var cts = new CancellationTokenSource();
                var upload = first.Client.PostAsync("/quantize", content, cts.Token);
                string uploads = Path.Combine(data, "uploads");
                // The server is writing the file part to disk when the process dies.
                await WaitForAsync(() => Directory.Exists(uploads)
                    && Directory.EnumerateFiles(uploads, "killed-upload.gguf", SearchOption.AllDirectories).Any(f => new FileInfo(f).Length > 0),
                    "the upload to reach the disk");
                await first.KillAsync();
                cts.Cancel();
                await Assert.ThrowsAnyAsync<Exception>(() => upload);
                Assert.NotEmpty(Directory.EnumerateFileSystemEntries(uploads));
            }

            await using var second = ChildServer.Start(data, JobHost.ProseGgufDir);
            await second.WaitAsync();
            await WaitForAsync(() => !Directory.EnumerateFileSystemEntries(Path.Combine(data, "uploads")).Any(), "the stale upload to be removed", 30);
            var jobs = JsonNode.Parse(await second.Client.GetStringAsync("/quantize"))!;
            Assert.Equal(0, (long)jobs["total"]!);
            string models = await second.Client.GetStringAsync("/v1/models");
            Assert.DoesNotContain("killed-upload", models);
            Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(data, "models")));
        }
        finally
        {
            JobHost.DeleteDirectory(data);
        }
    }

    [Fact(Timeout = 300_000)]
    public async Task SigKill_DuringQuantizationJob_JobRerunsAndOnlyTheCompleteModelIsServed()
    {
        string data = JobHost.NewDataDirectory();
        try
        {
            string id;
            string models = Path.Combine(data, "models");
            await using (var first = ChildServer.Start(data, JobHost.ProseGgufDir))
            {
                await first.WaitAsync("/health/live");
                var r = await first.Client.PostAsJsonAsync("/quantize", QuantizeEndpointTests.ShortJob("Q8_0"));
                Assert.Equal(HttpStatusCode.Accepted, r.StatusCode);
                id = (string)JsonNode.Parse(await r.Content.ReadAsStringAsync())!["id"]!;
                // Killed while the artifact is half written.
                string partial = Path.Combine(models, $".partial-{id}.gguf");
                await WaitForAsync(() => File.Exists(partial) && new FileInfo(partial).Length > 0, "the partial artifact", 120);
                await first.KillAsync();
                Assert.True(File.Exists(partial));
                Assert.False(File.Exists(Path.Combine(models, "prose-15m-f16:q8_0.gguf")));
            }

            await using var second = ChildServer.Start(data, JobHost.ProseGgufDir);
            await second.WaitAsync();
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(180);
            JsonNode job;
            while (true)
            {
                job = JsonNode.Parse(await second.Client.GetStringAsync($"/quantize/{id}"))!;
                if ((string?)job["status"] is not ("queued" or "running")) break;
                Assert.True(DateTime.UtcNow < deadline, "the interrupted job did not finish after the restart");
                await Task.Delay(200);
            }
            Assert.True((string?)job["status"] == "succeeded", job.ToJsonString());
            Assert.Equal(["prose-15m-f16:q8_0.gguf"], Directory.GetFileSystemEntries(models).Select(Path.GetFileName));
            // The registered model is the complete one: it loads and generates.
            var c = await second.Client.PostAsJsonAsync("/v1/completions", new { model = "prose-15m-f16:q8_0", prompt = "The", max_tokens = 4 });
            Assert.True(c.IsSuccessStatusCode, await c.Content.ReadAsStringAsync());
        }
        finally
        {
            JobHost.DeleteDirectory(data);
        }
    }

    [Fact(Timeout = 300_000)]
    public async Task SigKill_DuringBurstOfSubmissions_DatabaseIntactAndEveryAcceptedJobKept()
    {
        string data = JobHost.NewDataDirectory();
        try
        {
            var accepted = new ConcurrentBag<string>();
            await using (var first = ChildServer.Start(data, JobHost.ProseGgufDir, ["--QuantServe:Jobs:Concurrency=0"]))
            {
                await first.WaitAsync("/health/live");
                using var stop = new CancellationTokenSource();
                var writers = Enumerable.Range(0, 8).Select(_ => Task.Run(async () =>
                {
                    while (!stop.IsCancellationRequested)
                    {
                        try
                        {
                            var r = await first.Client.PostAsJsonAsync("/quantize", QuantizeEndpointTests.ShortJob("Q4_0"), stop.Token);
                            if (r.StatusCode == HttpStatusCode.Accepted)
                                accepted.Add((string)JsonNode.Parse(await r.Content.ReadAsStringAsync())!["id"]!);
                        }
                        catch (Exception) when (stop.IsCancellationRequested || first.Process.HasExited) { return; }
                        catch (HttpRequestException) { return; }
                    }
                })).ToArray();
                // Kill while eight clients keep inserting: some insert is almost surely mid-transaction.
                await WaitForAsync(() => accepted.Count >= 150, "150 accepted submissions", 60);
                await first.KillAsync();
                stop.Cancel();
                await Task.WhenAll(writers);
            }

            await using var second = ChildServer.Start(data, JobHost.ProseGgufDir, ["--QuantServe:Jobs:Concurrency=0"]);
            await second.WaitAsync();
            using (var db = new SqliteConnection($"Data Source={Path.Combine(data, "jobs.db")};Pooling=False"))
            {
                db.Open();
                using var check = db.CreateCommand();
                check.CommandText = "PRAGMA integrity_check";
                Assert.Equal("ok", (string)check.ExecuteScalar()!);
                using var ids = db.CreateCommand();
                ids.CommandText = "SELECT id, status FROM jobs";
                var stored = new Dictionary<string, string>();
                using (var reader = ids.ExecuteReader())
                    while (reader.Read()) stored[reader.GetString(0)] = reader.GetString(1);
                foreach (var id in accepted)
                {
                    Assert.True(stored.TryGetValue(id, out var status), $"accepted job {id} is missing after the crash");
                    Assert.Equal("queued", status);
                }
            }
            // And the restarted server serves them.
            var sample = accepted.First();
            var job = JsonNode.Parse(await second.Client.GetStringAsync($"/quantize/{sample}"))!;
            Assert.Equal("queued", (string?)job["status"]);
        }
        finally
        {
            JobHost.DeleteDirectory(data);
        }
    }
}
