using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using QuantServe.Api.Tests.TestSupport;

namespace QuantServe.Api.Tests.Telemetry;

/// <summary>/metrics as a real Prometheus server sees it: promtool checks the shipped config and the exposition text,
/// then Prometheus scrapes a live QuantServe on loopback and its query API returns QuantServe's own series.</summary>
public sealed class PrometheusScrapeTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("quantserve-prometheus-").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private static (int Exit, string Output) Run(string tool, string args, string? stdin = null)
    {
        var psi = new ProcessStartInfo(ExternalTool.Find(tool)!, args)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = stdin is not null, UseShellExecute = false,
        };
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (stdin is not null)
        {
            p.StandardInput.Write(stdin);
            p.StandardInput.Close();
        }
        Assert.True(p.WaitForExit(30_000), $"{tool} {args} did not finish");
        return (p.ExitCode, stdout.Result + stderr.Result);
    }

    private static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    private static string RepoFile(params string[] parts)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "QuantServe.sln"))) return Path.Combine([dir.FullName, .. parts]);
        throw new InvalidOperationException("QuantServe.sln not found above " + AppContext.BaseDirectory);
    }

    [PrometheusFact]
    public void Promtool_DockerPrometheusConfig_Valid()
    {
        var (exit, output) = Run("promtool", $"check config \"{RepoFile("docker", "prometheus.yml")}\"");
        Assert.True(exit == 0, output);
        Assert.Contains("SUCCESS", output);
    }

    [PrometheusFact]
    public async Task Prometheus_ScrapesLiveServer_QueriesVramGaugeAndQueueDepth()
    {
        // The real executable in its own process, as deployed: a test host in this process would share its meters with
        // every other test server running beside it. A paused worker keeps submitted jobs queued, so the depth is known.
        int serverPort = FreePort();
        var serverLog = new StringBuilder();
        using var server = StartLogged("dotnet", serverLog, Path.Combine(AppContext.BaseDirectory, "quantserve.dll"), "serve",
            "--urls", $"http://127.0.0.1:{serverPort}", $"--QuantServe:DataDirectory={Path.Combine(_dir, "data")}", "--QuantServe:Jobs:Concurrency=0");
        try
        {
            var address = new Uri($"http://127.0.0.1:{serverPort}");
            using var client = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(30) };
            await WaitReadyAsync(client, server, serverLog);

            var vram = JsonNode.Parse(await client.GetStringAsync("/models/stories260K/vram?context=256&batch=2"))!;
            long total = (long)vram["total_bytes"]!, kv = (long)vram["kv_cache_bytes"]!;
            for (int i = 0; i < 2; i++)
                Assert.Equal(HttpStatusCode.Accepted, (await client.PostAsJsonAsync("/quantize", new { model = "stories260K", method = "int8" })).StatusCode);

            string text = await client.GetStringAsync("/metrics");
            var (exit, lint) = Run("promtool", "check metrics", text);
            Assert.True(exit == 0, "promtool check metrics: " + lint);

            int port = FreePort();
            string config = Path.Combine(_dir, "prometheus.yml");
            await File.WriteAllTextAsync(config, $"""
                global:
                  scrape_interval: 1s
                scrape_configs:
                  - job_name: quantserve
                    metrics_path: /metrics
                    static_configs:
                      - targets: ["{address.Authority}"]
                """);
            var (checkExit, checkOut) = Run("promtool", $"check config \"{config}\"");
            Assert.True(checkExit == 0, checkOut);

            var log = new StringBuilder();
            using var prometheus = StartLogged(ExternalTool.Find("prometheus")!, log, $"--config.file={config}",
                $"--storage.tsdb.path={Path.Combine(_dir, "tsdb")}", $"--web.listen-address=127.0.0.1:{port}");
            try
            {
                using var api = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(5) };
                async Task<JsonArray?> QueryAsync(string promql)
                {
                    try
                    {
                        var body = JsonNode.Parse(await api.GetStringAsync("/api/v1/query?query=" + Uri.EscapeDataString(promql)))!;
                        return (string?)body["status"] == "success" && body["data"]!["result"] is JsonArray { Count: > 0 } r ? r : null;
                    }
                    catch (HttpRequestException) { return null; }
                }

                // Wait for the first scrape to land (Prometheus starts in about a second and scrapes every second).
                JsonArray? totalSeries = null;
                var deadline = DateTime.UtcNow.AddSeconds(20);
                while (totalSeries is null && DateTime.UtcNow < deadline && !prometheus.HasExited)
                {
                    totalSeries = await QueryAsync("""quantserve_model_vram_bytes{model="stories260K",component="total"}""");
                    if (totalSeries is null) await Task.Delay(250);
                }
                if (totalSeries is null) Assert.Fail("no scrape reached Prometheus; its log:\n" + log);

                var series = Assert.Single(totalSeries)!;
                Assert.Equal("quantserve", (string?)series["metric"]!["job"]);
                Assert.Equal("F32", (string?)series["metric"]!["precision"]);
                Assert.Equal(total, Value(series));
                Assert.Equal(kv, Value(Assert.Single((await QueryAsync("""quantserve_model_vram_bytes{component="kv_cache"}"""))!)));
                Assert.Equal(2, Value(Assert.Single((await QueryAsync("quantserve_quantization_queue_depth"))!)));
                Assert.Equal(1, Value(Assert.Single((await QueryAsync("""up{job="quantserve"}"""))!)));
                // ASP.NET Core's own meters come through the same reader.
                Assert.NotNull(await QueryAsync("""http_server_request_duration_seconds_count{http_route="/models/{id}/vram"}"""));
            }
            finally { Stop(prometheus); }
        }
        finally { Stop(server); }
    }

    private static Process StartLogged(string program, StringBuilder log, params string[] args)
    {
        var psi = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        p.OutputDataReceived += (_, e) => { lock (log) log.AppendLine(e.Data); };
        p.ErrorDataReceived += (_, e) => { lock (log) log.AppendLine(e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }

    private static void Stop(Process p)
    {
        if (!p.HasExited) p.Kill(entireProcessTree: true);
        p.WaitForExit(10_000);
    }

    private static async Task WaitReadyAsync(HttpClient client, Process server, StringBuilder log)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < deadline && !server.HasExited)
        {
            try { if ((await client.GetAsync("/health/ready")).IsSuccessStatusCode) return; }
            catch (HttpRequestException) { }
            await Task.Delay(100);
        }
        Assert.Fail("quantserve did not become ready; its log:\n" + log);
    }

    private static long Value(JsonNode? series)
        => (long)double.Parse((string)series!["value"]![1]!, CultureInfo.InvariantCulture);
}
