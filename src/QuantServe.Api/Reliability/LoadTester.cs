using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace QuantServe.Api.Reliability;

/// <summary>Settings of one load run.</summary>
public sealed record LoadTestOptions
{
    /// <summary>Server base address.</summary>
    public required Uri Url { get; init; }
    /// <summary>Model id sent in every request.</summary>
    public required string Model { get; init; }
    /// <summary>Concurrent clients, each sending one request after another.</summary>
    public int Clients { get; init; } = 64;
    /// <summary>Seconds during which new requests start; requests in flight at the end are awaited.</summary>
    public double DurationSeconds { get; init; } = 60;
    /// <summary>Probability that a request streams (SSE).</summary>
    public double StreamRatio { get; init; } = 0.5;
    /// <summary>Seconds at the start excluded from the memory comparison.</summary>
    public double WarmupSeconds { get; init; } = 5;
    /// <summary>Smallest and largest max_tokens drawn per request.</summary>
    public int MinTokens { get; init; } = 8;
    /// <summary>Largest max_tokens drawn per request.</summary>
    public int MaxTokens { get; init; } = 96;
    /// <summary>When positive, requests send <c>top_k</c> and no seed: plain top-k sampling, which a GPU server samples on
    /// the device; 0 (default): seeded sampling over the whole vocabulary (the host sampler everywhere).</summary>
    public int TopK { get; init; }
    /// <summary>Bearer token for servers with API keys.</summary>
    public string? ApiKey { get; init; }
    /// <summary>Longest a single request may take before it counts as a timeout.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(120);
    /// <summary>How memory is sampled: this process (the in-process server), another pid, or not at all.</summary>
    public Func<MemorySample?>? SampleMemory { get; init; }
    /// <summary>Name of the sampled process for the report.</summary>
    public string MemoryProcess { get; init; } = "";
    /// <summary>Allowed growth (percent) of the second half's mean memory over the first's.</summary>
    public double FlatTolerancePct { get; init; } = 10;
    /// <summary>Seed of the clients' choices (prompt, stream or not, max_tokens, sampling seed).</summary>
    public int Seed { get; init; } = 1;
}

/// <summary>
/// Drives N concurrent HTTP clients against /v1/completions for a fixed time, mixing streaming (SSE, with
/// stream_options.include_usage) and non-streaming requests with varied prompts and lengths, and measures latency,
/// time to first token, throughput, errors by kind and process memory once a second.
/// </summary>
public static class LoadTester
{
    // Openings in the style of the TinyStories corpus (what the embedded model knows), of varied lengths.
    private static readonly string[] Prompts =
    [
        "Once upon a time",
        "One day, a little girl named Lily",
        "Tom and his dog went to the park. They",
        "The sun was shining and the birds were singing. A small boy",
        "There was a big red ball in the garden.",
        "Mom said, \"Be careful!\" but Ben",
        "Once upon a time, there was a kind old man who lived in a little house near the woods. Every morning he",
        "The cat was sad because",
        "Sara had a new toy. She wanted to show it to her friend Tim, so she",
        "In the forest, a tiny bird",
        "Lucy liked to draw pictures. One day she drew",
        "It was a rainy day and Max could not go outside. He",
    ];

    /// <summary>Runs the load and returns the report.</summary>
    public static async Task<LoadReport> RunAsync(LoadTestOptions options, CancellationToken cancellation)
    {
        if (options.Clients < 1) throw new ArgumentException("--clients must be at least 1");
        if (options.DurationSeconds <= 0) throw new ArgumentException("--duration must be positive");
        if (options.StreamRatio is < 0 or > 1) throw new ArgumentException("--stream-ratio must be between 0 and 1");
        if (options.MinTokens < 1 || options.MaxTokens < options.MinTokens) throw new ArgumentException("token range must satisfy 1 ≤ min ≤ max");

        using var handler = new SocketsHttpHandler
        {
            MaxConnectionsPerServer = options.Clients,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(2),
            ConnectTimeout = TimeSpan.FromSeconds(10),
        };
        using var http = new HttpClient(handler) { BaseAddress = options.Url, Timeout = Timeout.InfiniteTimeSpan };
        if (options.ApiKey is { Length: > 0 } key) http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);

        var tally = new Tally();
        var clock = Stopwatch.StartNew();
        var deadline = TimeSpan.FromSeconds(options.DurationSeconds);
        var samples = new List<MemorySample>();
        using var stopSampling = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        var sampler = options.SampleMemory is { } sample ? Task.Run(() => SampleAsync(sample, clock, samples, stopSampling.Token), CancellationToken.None) : Task.CompletedTask;

        var clients = Enumerable.Range(0, options.Clients).Select(i => Task.Run(async () =>
        {
            var random = new Random(HashCode.Combine(options.Seed, i));
            while (clock.Elapsed < deadline && !cancellation.IsCancellationRequested)
                await OneRequestAsync(http, options, random, tally, cancellation);
        }, CancellationToken.None)).ToArray();
        await Task.WhenAll(clients);
        double elapsed = clock.Elapsed.TotalSeconds;
        stopSampling.Cancel();
        await sampler;
        cancellation.ThrowIfCancellationRequested();

        List<MemorySample> steady;
        lock (samples) steady = samples.Where(s => s.Seconds >= options.WarmupSeconds && s.Seconds <= options.DurationSeconds).ToList();
        long ok = tally.Requests - tally.Errors;
        return new LoadReport
        {
            Url = options.Url.ToString(), Model = options.Model, Clients = options.Clients, DurationSeconds = options.DurationSeconds,
            ElapsedSeconds = elapsed, StreamRatio = options.StreamRatio, Requests = tally.Requests, Streamed = tally.Streamed,
            Errors = tally.Errors, ErrorsByKind = tally.Kinds.OrderBy(kv => kv.Key, StringComparer.Ordinal).ToDictionary(kv => kv.Key, kv => kv.Value),
            ErrorSamples = tally.Samples.ToList(),
            LatencyMs = Percentiles.Of(tally.Latencies.ToList()), TimeToFirstTokenMs = Percentiles.Of(tally.FirstTokens.ToList()),
            CompletionTokens = tally.Tokens, TokensPerSecond = tally.Tokens / elapsed, RequestsPerSecond = ok / elapsed,
            Memory = MemoryTrend.From(options.MemoryProcess, steady, options.WarmupSeconds, options.FlatTolerancePct),
        };
    }

    private static async Task SampleAsync(Func<MemorySample?> sample, Stopwatch clock, List<MemorySample> into, CancellationToken stop)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        try
        {
            while (await timer.WaitForNextTickAsync(stop))
                if (sample() is { } s)
                    lock (into) into.Add(s with { Seconds = clock.Elapsed.TotalSeconds });
        }
        catch (OperationCanceledException) { }
    }

    private sealed class Tally
    {
        private long _requests, _streamed, _errors, _tokens;
        public readonly ConcurrentDictionary<string, long> Kinds = new(StringComparer.Ordinal);
        public readonly ConcurrentQueue<string> Samples = new();
        public readonly ConcurrentBag<double> Latencies = [];
        public readonly ConcurrentBag<double> FirstTokens = [];
        public long Requests => Interlocked.Read(ref _requests);
        public long Streamed => Interlocked.Read(ref _streamed);
        public long Errors => Interlocked.Read(ref _errors);
        public long Tokens => Interlocked.Read(ref _tokens);

        public void Start(bool stream)
        {
            Interlocked.Increment(ref _requests);
            if (stream) Interlocked.Increment(ref _streamed);
        }

        public void Succeed(double ms, double? firstTokenMs, long tokens)
        {
            Latencies.Add(ms);
            if (firstTokenMs is { } t) FirstTokens.Add(t);
            Interlocked.Add(ref _tokens, tokens);
        }

        public void Fail(string kind, string detail)
        {
            Interlocked.Increment(ref _errors);
            Kinds.AddOrUpdate(kind, 1, (_, n) => n + 1);
            if (Samples.Count < 5) Samples.Enqueue($"{kind}: {(detail.Length > 300 ? detail[..300] : detail)}");
        }
    }

    private static async Task OneRequestAsync(HttpClient http, LoadTestOptions o, Random random, Tally tally, CancellationToken cancellation)
    {
        bool stream = random.NextDouble() < o.StreamRatio;
        var body = new Dictionary<string, object>
        {
            ["model"] = o.Model,
            ["prompt"] = Prompts[random.Next(Prompts.Length)],
            ["max_tokens"] = random.Next(o.MinTokens, o.MaxTokens + 1),
            ["temperature"] = 0.8,
        };
        if (o.TopK > 0) body["top_k"] = o.TopK;
        else body["seed"] = random.Next();
        if (stream)
        {
            body["stream"] = true;
            body["stream_options"] = new Dictionary<string, object> { ["include_usage"] = true };
        }
        tally.Start(stream);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        timeout.CancelAfter(o.RequestTimeout);
        long started = Stopwatch.GetTimestamp();
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "v1/completions")
            {
                Content = new StringContent(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json"),
            };
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            if (!response.IsSuccessStatusCode)
            {
                string text = await response.Content.ReadAsStringAsync(timeout.Token);
                tally.Fail($"http_{(int)response.StatusCode}", text);
                return;
            }
            if (!stream)
            {
                using var doc = JsonDocument.Parse(await response.Content.ReadAsStreamAsync(timeout.Token), default);
                if (!doc.RootElement.TryGetProperty("usage", out var usage) || !doc.RootElement.TryGetProperty("choices", out var choices) || choices.GetArrayLength() != 1)
                {
                    tally.Fail("bad_response", doc.RootElement.GetRawText());
                    return;
                }
                tally.Succeed(Stopwatch.GetElapsedTime(started).TotalMilliseconds, null, usage.GetProperty("completion_tokens").GetInt64());
                return;
            }
            await ReadStreamAsync(response, started, tally, timeout.Token);
        }
        catch (OperationCanceledException) when (!cancellation.IsCancellationRequested)
        {
            tally.Fail("timeout", $"no complete answer within {o.RequestTimeout.TotalSeconds:F0} s");
        }
        catch (HttpRequestException e)
        {
            tally.Fail("connection", e.Message);
        }
        catch (IOException e)
        {
            tally.Fail("connection", e.Message);
        }
        catch (JsonException e)
        {
            tally.Fail("bad_response", e.Message);
        }
    }

    private static async Task ReadStreamAsync(HttpResponseMessage response, long started, Tally tally, CancellationToken cancellation)
    {
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancellation));
        double? firstToken = null;
        long? tokens = null;
        bool finished = false, done = false;
        while (await reader.ReadLineAsync(cancellation) is { } line)
        {
            if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
            var data = line.AsSpan(6);
            if (data.SequenceEqual("[DONE]"))
            {
                done = true;
                break;
            }
            using var doc = JsonDocument.Parse(line.AsMemory(6));
            var root = doc.RootElement;
            if (root.TryGetProperty("error", out var error))
            {
                tally.Fail("stream_error", error.GetRawText());
                return;
            }
            if (root.TryGetProperty("usage", out var usage) && usage.ValueKind == JsonValueKind.Object)
                tokens = usage.GetProperty("completion_tokens").GetInt64();
            if (root.TryGetProperty("choices", out var choices))
                foreach (var c in choices.EnumerateArray())
                {
                    if (firstToken is null && c.GetProperty("text").GetString() is { Length: > 0 })
                        firstToken = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                    if (c.TryGetProperty("finish_reason", out var f) && f.ValueKind == JsonValueKind.String) finished = true;
                }
        }
        if (!done || !finished || tokens is null)
        {
            tally.Fail("incomplete_stream", $"stream ended without {(!finished ? "a finish_reason" : tokens is null ? "a usage chunk" : "data: [DONE]")}");
            return;
        }
        tally.Succeed(Stopwatch.GetElapsedTime(started).TotalMilliseconds, firstToken, tokens.Value);
    }
}
