using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json.Nodes;

namespace QuantServe.Api.Tests.Quantization;

/// <summary>A real <c>quantserve</c> child process killed with SIGKILL while jobs are queued and one runs.</summary>
public sealed class CrashRecoveryTests
{
    private static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    private static Process Start(string data, int port)
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "quantserve.dll");
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        foreach (var a in new[]
                 {
                     dll, "serve", "--urls", $"http://127.0.0.1:{port}", $"--QuantServe:DataDirectory={data}",
                     $"--QuantServe:ModelsDirectory={JobHost.ProseGgufDir}", "--QuantServe:Jobs:Concurrency=1",
                 })
            psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        p.OutputDataReceived += (_, _) => { };
        p.ErrorDataReceived += (_, _) => { };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }

    private static async Task WaitUp(HttpClient client)
    {
        for (int i = 0; i < 600; i++)
        {
            try { if ((await client.GetAsync("/health/live")).IsSuccessStatusCode) return; }
            catch (HttpRequestException) { }
            await Task.Delay(100);
        }
        throw new TimeoutException("quantserve did not start");
    }

    [Fact]
    [Trait("Category", "Slow")]
    public async Task SigKill_FiveJobsQueued_AllSucceedAfterRestart()
    {
        string data = JobHost.NewDataDirectory();
        Process? first = null, second = null;
        try
        {
            int port = FreePort();
            first = Start(data, port);
            using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            await WaitUp(client);
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
            first.Kill(entireProcessTree: true); // SIGKILL: no shutdown hooks run
            await first.WaitForExitAsync();

            port = FreePort();
            second = Start(data, port);
            using var client2 = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            await WaitUp(client2);
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
                if (p is { HasExited: false }) { p.Kill(entireProcessTree: true); await p.WaitForExitAsync(); }
            JobHost.DeleteDirectory(data);
        }
    }
}
