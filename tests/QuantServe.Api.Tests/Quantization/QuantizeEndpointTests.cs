using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using QuantServe.Engine.Formats.Gguf;

namespace QuantServe.Api.Tests.Quantization;

public sealed class QuantizeEndpointTests : IAsyncLifetime
{
    private readonly string _data = JobHost.NewDataDirectory();
    private JobHost _host = null!;

    public Task InitializeAsync()
    {
        _host = new JobHost(_data);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _host.DisposeAsync();
        JobHost.DeleteDirectory(_data);
    }

    internal static object ShortJob(string method) => new { model = "prose-15m-f16", method, context = 32, eval_tokens = 64 };

    [Fact]
    public async Task Submit_ProseF16ToQ8_0_ReportsQualityAndServesNewModel()
    {
        string id = await _host.SubmitAsync(ShortJob("Q8_0"));
        var (job, seen) = await _host.WaitAsync(id);
        Assert.True((string?)job["status"] == "succeeded", job.ToJsonString());
        Assert.Equal(1.0, (double)job["progress"]!);
        Assert.NotNull(job["started_at"]);
        Assert.NotNull(job["finished_at"]);
        // Progress never goes backwards.
        for (int i = 1; i < seen.Count; i++) Assert.True(seen[i].Progress >= seen[i - 1].Progress - 1e-9);

        var result = job["result"]!;
        Assert.Equal("prose-15m-f16:q8_0", (string?)result["model_id"]);
        var report = result["report"]!;
        long size = (long)report["size_bytes"]!, original = (long)report["original_size_bytes"]!;
        Assert.True(size < original * 0.6, $"{size} vs {original}");
        double bpw = (double)report["bits_per_weight"]!;
        Assert.InRange(bpw, 8.4, 8.6); // Q8_0 stores 34 bytes per 32 weights = 8.5 bits
        double ratio = (double)report["perplexity_ratio"]!;
        Assert.InRange(ratio, 0.98, 1.02);
        Assert.InRange((double)report["kld_mean"]!, 0, 0.01);
        Assert.True((double)report["kld_p99"]! >= (double)report["kld_mean"]!);
        Assert.InRange((double)report["top1_agreement"]!, 0.9, 1.0);
        Assert.Equal("Q8_0", (string?)report["tensor_formats"]!["blk.0.attn_q.weight"]);
        Assert.Equal("F32", (string?)report["tensor_formats"]!["blk.0.attn_norm.weight"]);
        var layers = report["layers"]!.AsArray();
        Assert.Equal(57, layers.Count);
        foreach (var l in layers)
        {
            Assert.InRange((double)l!["sqnr_db"]!, 30, 999);
            Assert.InRange((double)l["collapse_fraction"]!, 0, 1);
        }
        Assert.Equal(32, (int)report["vram"]!["context"]!);
        Console.WriteLine("stage seconds: " + report["stage_seconds"]!.ToJsonString());

        // The quantized tensors are llama.cpp's own Q8_0 bytes (round-to-nearest with d = amax/127).
        using (var ours = GgufFile.Open(Path.Combine(_data, "models", "prose-15m-f16:q8_0.gguf")))
        using (var theirs = GgufFile.Open(Path.Combine(JobHost.ProseGgufDir, "prose-15m-Q8_0.gguf")))
        {
            var q = ours.Tensor("blk.3.ffn_down.weight");
            Assert.Equal(theirs.Tensor("blk.3.ffn_down.weight").Span.ToArray(), q.Span.ToArray());
        }
        Assert.Empty(Directory.GetFiles(Path.Combine(_data, "models"), ".partial-*"));

        var completion = await _host.Client.PostAsJsonAsync("/v1/completions",
            new { model = "prose-15m-f16:q8_0", prompt = "In the beginning God created", max_tokens = 8, temperature = 0 });
        string text = await completion.Content.ReadAsStringAsync();
        Assert.True(completion.StatusCode == HttpStatusCode.OK, text);
        Assert.Equal("prose-15m-f16:q8_0", (string?)JsonNode.Parse(text)!["model"]);
        Assert.False(string.IsNullOrEmpty((string?)JsonNode.Parse(text)!["choices"]![0]!["text"]));

        string metrics = await _host.Client.GetStringAsync("/metrics");
        Assert.Contains("quantserve_quantization_perplexity_ratio_count", metrics);
        Assert.Contains("quantserve_quantization_kl_divergence_count", metrics);
        Assert.Contains("quantserve_quantization_job_duration_seconds_count", metrics);
        Assert.Contains("quantserve_model_vram_bytes{", metrics);
        Assert.Contains("quantserve_quantization_queue_depth", metrics);

        var list = JsonNode.Parse(await _host.Client.GetStringAsync("/quantize?limit=5"))!;
        Assert.Equal(1, (long)list["total"]!);
        Assert.Equal(id, (string?)list["data"]![0]!["id"]);
    }

    [Fact]
    public async Task Submit_UnknownModelOrMethod_ProblemDetails()
    {
        var r = await _host.Client.PostAsJsonAsync("/quantize", new { model = "no-such-model", method = "Q8_0" });
        Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
        Assert.Equal("application/problem+json", r.Content.Headers.ContentType?.MediaType);

        r = await _host.Client.PostAsJsonAsync("/quantize", new { model = "prose-15m-f16", method = "Q9_9" });
        Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        var problem = JsonNode.Parse(await r.Content.ReadAsStringAsync())!;
        Assert.Contains("Q4_K", (string?)problem["detail"]);
        Assert.Contains("Q8_0", (string?)problem["detail"]);

        r = await _host.Client.GetAsync("/quantize/0123");
        Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
    }

    [Fact]
    public async Task Events_JobWithTaskEval_StreamsProgressUntilSucceeded()
    {
        var tasks = new object[]
        {
            new { prompt = "In the beginning God created", expected = " a", match = "contains", max_tokens = 4 },
            new { prompt = "The quick brown fox", expected = @"^\s*of", match = "regex", max_tokens = 4 },
            new { prompt = "The quick brown fox", match = "json", max_tokens = 4 },
        };
        string id = await _host.SubmitAsync(new { model = "prose-15m-f16", method = "Q4_0", context = 32, eval_tokens = 64, task_eval = tasks, degradation_threshold = 5 });
        using var response = await _host.Client.GetAsync($"/quantize/{id}/events", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var events = new List<string>();
        string? data = null;
        while (await reader.ReadLineAsync() is { } line)
        {
            if (line.StartsWith("event: ", StringComparison.Ordinal)) events.Add(line[7..]);
            if (line.StartsWith("data: ", StringComparison.Ordinal)) data = line[6..];
        }
        Assert.Equal("succeeded", events[^1]);
        Assert.Contains("progress", events);
        var job = JsonNode.Parse(data!)!;
        Assert.Equal("succeeded", (string?)job["status"]);
        // llama.cpp's F16 greedy text continues with " a" and " of"; no continuation of prose is a JSON document.
        var task = job["result"]!["report"]!["task"]!;
        Assert.Equal(3, (int)task["items"]!);
        Assert.Equal(2.0 / 3, (double)task["score_base"]!, 6);
        double degradation = (double)task["degradation_pct"]!;
        Assert.Equal(degradation <= 5 ? "deploy" : "investigate", (string?)task["recommendation"]);
    }
}
