using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using QuantServe.Api.Reliability;

namespace QuantServe.Api.Cli;

/// <summary>
/// <c>quantserve load-test</c>: N concurrent HTTP clients against /v1/completions for a fixed time (mixing SSE and plain
/// responses), reporting errors by kind, latency and time-to-first-token percentiles, tokens/s and whether memory stayed
/// flat. Without --url it starts the full server in-process on a loopback port and samples this process's memory.
/// Exit code 0 when no request failed, 3 otherwise.
/// </summary>
public static class LoadTestCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var url = new Option<string?>("--url") { Description = "Server to load (e.g. http://127.0.0.1:8080); default: start one in-process on a loopback port" };
        var model = CliOptions.Model();
        model.Description = "Model the in-process server serves (default: the embedded stories260K); ignored with --url";
        var modelId = new Option<string?>("--model-id") { Description = "Model id sent in requests (default: the server's default model, from /health/ready)" };
        var clients = new Option<int>("--clients", "-c") { Description = "Concurrent clients", DefaultValueFactory = _ => 64 };
        var duration = new Option<double>("--duration", "-d") { Description = "Seconds during which requests start", DefaultValueFactory = _ => 60 };
        var streamRatio = new Option<double>("--stream-ratio") { Description = "Fraction of requests that stream", DefaultValueFactory = _ => 0.5 };
        var warmup = new Option<double?>("--warmup") { Description = "Seconds excluded from the memory comparison (default: a sixth of the duration, at most 10)" };
        var minTokens = new Option<int>("--min-tokens") { Description = "Smallest max_tokens drawn per request", DefaultValueFactory = _ => 8 };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Largest max_tokens drawn per request", DefaultValueFactory = _ => 96 };
        var topK = new Option<int>("--top-k") { Description = "Send top_k N without a seed (sampled on the device by a GPU server); 0 = seeded full-vocabulary sampling", DefaultValueFactory = _ => 0 };
        var apiKey = new Option<string?>("--api-key") { Description = "Bearer token sent with every request" };
        var serverPid = new Option<int?>("--server-pid") { Description = "With --url: the server's process id, to sample its memory" };
        var json = new Option<bool>("--json") { Description = "Print the report as JSON" };
        var command = new Command("load-test", "Load the completions API with concurrent streaming and non-streaming clients; report latency, throughput, errors and memory.")
        {
            url, model, modelId, clients, duration, streamRatio, warmup, minTokens, maxTokens, topK, apiKey, serverPid, json,
        };
        command.SetAction(async (parse, cancel) =>
        {
            var output = parse.InvocationConfiguration.Output;
            double seconds = parse.GetValue(duration);
            double warm = parse.GetValue(warmup) ?? Math.Min(10, seconds / 6);
            LoopbackServer? server = null;
            try
            {
                Uri address;
                Func<MemorySample?>? sample;
                string process;
                if (parse.GetValue(url) is { Length: > 0 } u)
                {
                    address = new Uri(u.EndsWith('/') ? u : u + "/");
                    if (parse.GetValue(serverPid) is { } pid)
                    {
                        using var p = Process.GetProcessById(pid);
                        sample = () => OtherProcess(pid);
                        process = $"server pid {pid}";
                    }
                    else
                    {
                        sample = null;
                        process = "";
                    }
                }
                else
                {
                    int n = Math.Max(1, parse.GetValue(clients));
                    // Room for every client in the batch or the queue, so a correct server answers all of them.
                    server = await LoopbackServer.StartAsync(CliOptions.ResolveModel(parse.GetValue(model)), new Dictionary<string, string?>
                    {
                        ["QuantServe:MaxBatch"] = "16",
                        ["QuantServe:MaxQueue"] = Math.Max(64, n).ToString(System.Globalization.CultureInfo.InvariantCulture),
                    }, cancel);
                    address = server.Address;
                    sample = ThisProcess;
                    process = "this process: in-process server and its clients";
                }
                string id = parse.GetValue(modelId) ?? await ReadyModelAsync(address, parse.GetValue(apiKey), cancel);
                var report = await LoadTester.RunAsync(new LoadTestOptions
                {
                    Url = address, Model = id, Clients = parse.GetValue(clients), DurationSeconds = seconds,
                    StreamRatio = parse.GetValue(streamRatio), WarmupSeconds = warm, MinTokens = parse.GetValue(minTokens),
                    MaxTokens = parse.GetValue(maxTokens), TopK = Math.Max(0, parse.GetValue(topK)), ApiKey = parse.GetValue(apiKey), SampleMemory = sample, MemoryProcess = process,
                }, cancel);
                output.Write(parse.GetValue(json) ? report.ToJson() + Environment.NewLine : report.ToMarkdown());
                return report.Errors == 0 ? 0 : 3;
            }
            finally
            {
                if (server is not null) await server.DisposeAsync();
            }
        });
        return command;
    }

    private static MemorySample ThisProcess()
        => new(0, Environment.WorkingSet, GC.GetGCMemoryInfo().HeapSizeBytes);

    private static MemorySample? OtherProcess(int pid)
    {
        try
        {
            using var p = Process.GetProcessById(pid);
            return new MemorySample(0, p.WorkingSet64, null);
        }
        catch (ArgumentException) { return null; } // exited
    }

    /// <summary>Waits (up to two minutes) for /health/ready and returns the default model's id.</summary>
    private static async Task<string> ReadyModelAsync(Uri address, string? apiKey, CancellationToken cancel)
    {
        using var http = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(10) };
        if (apiKey is { Length: > 0 }) http.DefaultRequestHeaders.Authorization = new("Bearer", apiKey);
        string? last = null;
        for (int i = 0; i < 240; i++)
        {
            try
            {
                using var r = await http.GetAsync("health/ready", cancel);
                last = await r.Content.ReadAsStringAsync(cancel);
                if (r.IsSuccessStatusCode)
                    return JsonDocument.Parse(last).RootElement.GetProperty("model").GetString()
                        ?? throw new InvalidOperationException("/health/ready names no model; pass --model-id");
            }
            catch (HttpRequestException e) { last = e.Message; }
            await Task.Delay(500, cancel);
        }
        throw new InvalidOperationException($"{address} did not become ready: {last}");
    }
}
