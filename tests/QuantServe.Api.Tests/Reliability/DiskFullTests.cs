using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using QuantServe.Api.Quantization;
using QuantServe.Api.Tests.Quantization;
using QuantServe.Api.Tests.TestSupport;

namespace QuantServe.Api.Tests.Reliability;

/// <summary>
/// A job whose output does not fit the disk. The server runs in its own user and mount namespace (<c>unshare -rm</c>,
/// no root needed where unprivileged user namespaces are allowed) with the produced-models directory on a 2 MiB tmpfs,
/// so the kernel itself answers ENOSPC in the middle of writing a 16 MB Q8_0 model.
/// </summary>
public sealed class DiskFullTests
{
    [Fact(Timeout = 300_000)]
    public async Task Quantize_OutputDirectoryFull_JobFailsWithReasonAndLeavesNoFiles()
    {
        string data = JobHost.NewDataDirectory();
        string models = Path.Combine(data, "models");
        Directory.CreateDirectory(models);
        try
        {
            // sh runs as the namespace's root, mounts the small tmpfs, then becomes the server (exec keeps the pid).
            string[] wrapper = ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=2m tmpfs \"$0\" && exec \"$@\"", models];
            await using var server = ChildServer.Start(data, JobHost.ProseGgufDir, wrapper: wrapper);
            await server.WaitAsync();
            // The tmpfs is only visible inside the server's mount namespace: look through its /proc root.
            string inside = $"/proc/{server.Process.Id}/root{models}";
            Assert.True(Directory.Exists(inside), server.Log);

            var r = await server.Client.PostAsJsonAsync("/quantize", QuantizeEndpointTests.ShortJob("Q8_0"));
            Assert.Equal(HttpStatusCode.Accepted, r.StatusCode);
            string id = (string)JsonNode.Parse(await r.Content.ReadAsStringAsync())!["id"]!;
            JsonNode job;
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(180);
            while (true)
            {
                job = JsonNode.Parse(await server.Client.GetStringAsync($"/quantize/{id}"))!;
                if ((string?)job["status"] is not ("queued" or "running")) break;
                Assert.True(DateTime.UtcNow < deadline, "the job did not end");
                await Task.Delay(100);
            }

            Assert.True((string?)job["status"] == "failed", job.ToJsonString());
            string error = (string)job["error"]!;
            Assert.StartsWith("no space left on device: quantize could not write the model to " + models, error);
            Assert.Empty(Directory.GetFileSystemEntries(inside));
            Assert.DoesNotContain("q8_0", await server.Client.GetStringAsync("/v1/models"));
            // The server carries on serving.
            var c = await server.Client.PostAsJsonAsync("/v1/completions", new { model = "stories260K", prompt = "Once", max_tokens = 4 });
            Assert.Equal(HttpStatusCode.OK, c.StatusCode);
        }
        finally
        {
            JobHost.DeleteDirectory(data);
        }
    }

    [Fact]
    public void DiskFull_EnospcInsideAggregate_IsFound()
    {
        var enospc = new IOException("No space left on device : '/x'", 28);
        Assert.Same(enospc, JobRunner.DiskFull(new AggregateException(new InvalidOperationException("a"), new AggregateException(enospc))));
        Assert.Same(enospc, JobRunner.DiskFull(new InvalidOperationException("wrapped", enospc)));
        Assert.Null(JobRunner.DiskFull(new IOException("Permission denied", 13)));
    }

    [Fact]
    public void DiskFull_WriteToDevFull_IsRecognized()
    {
        // /dev/full answers every write with ENOSPC: the exception the runtime really throws is classified.
        var e = Assert.ThrowsAny<IOException>(() =>
        {
            using var f = new FileStream("/dev/full", FileMode.Open, FileAccess.Write, FileShare.ReadWrite, 1);
            f.Write(new byte[8192]);
            f.Flush();
        });
        Assert.Same(e, JobRunner.DiskFull(e));
    }
}
