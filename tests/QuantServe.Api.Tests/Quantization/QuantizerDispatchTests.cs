using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using QuantServe.Engine.Formats.Gguf;
using QuantServe.Engine.Models;
using QuantServe.Api.Tests.TestSupport;

namespace QuantServe.Api.Tests.Quantization;

/// <summary>Jobs go to the real pipelines: GGUF presets to GgufQuantizer, QuantServe's own types to RtnQuantizer.</summary>
public sealed class QuantizerDispatchTests : IAsyncLifetime
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

    [Fact]
    public async Task Submit_Stories260KToInt4G32_ReportsQualityAndServesQuantizedFolder()
    {
        string id = await _host.SubmitAsync(new { model = "stories260K", method = "INT4-G32", context = 64, eval_tokens = 256 });
        var (job, seen) = await _host.WaitAsync(id);
        Assert.True((string?)job["status"] == "succeeded", job.ToJsonString());
        Assert.Equal("int4-g32", (string?)job["method"]);
        for (int i = 1; i < seen.Count; i++) Assert.True(seen[i].Progress >= seen[i - 1].Progress - 1e-9);

        var result = job["result"]!;
        Assert.Equal("stories260K:int4-g32", (string?)result["model_id"]);
        var report = result["report"]!;
        long size = (long)report["size_bytes"]!, original = (long)report["original_size_bytes"]!;
        Assert.True(size > 0 && size < original, $"{size} vs {original}");
        // int4-g32: 4-bit codes plus one fp16 scale per 32 weights = 4.5 bits; the int8 embedding (tied) adds its share.
        Assert.InRange((double)report["bits_per_weight"]!, 4.4, 8.6);
        double ratio = (double)report["perplexity_ratio"]!;
        Assert.InRange(ratio, 0.9, 1.5);
        Assert.InRange((double)report["kld_mean"]!, 1e-6, 0.8); // 0.34 measured: a 512-token story model on out-of-domain prose
        Assert.Equal("int4-g32", (string?)report["tensor_formats"]!["model.layers.0.self_attn.q_proj.weight"]);
        Console.WriteLine($"int4-g32 job: size {size} of {original}, bpw {report["bits_per_weight"]}, ppl ratio {ratio}, kld {report["kld_mean"]}, stages {report["stage_seconds"]!.ToJsonString()}");

        string folder = Path.Combine(_data, "models", "stories260K:int4-g32");
        Assert.Equal("quantserve", ModelLoader.DetectFormat(folder));
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(_data, "models"), ".*"));

        var completion = await _host.Client.PostAsJsonAsync("/v1/completions",
            new { model = "stories260K:int4-g32", prompt = "Once upon a time", max_tokens = 8, temperature = 0 });
        string text = await completion.Content.ReadAsStringAsync();
        Assert.True(completion.StatusCode == HttpStatusCode.OK, text);
        Assert.Equal("stories260K:int4-g32", (string?)JsonNode.Parse(text)!["model"]);
        Assert.False(string.IsNullOrEmpty((string?)JsonNode.Parse(text)!["choices"]![0]!["text"]));
    }

    [Fact]
    public async Task Submit_Stories260KToAwqInt4G32WithCalibrationText_ServesAwqQuantizedFolder()
    {
        string calibration = File.ReadAllText(SharedAssets.Path("eval", "stories260k-samples.txt"));
        string id = await _host.SubmitAsync(new { model = "stories260K", method = "AWQ-int4-g32", calibration_text = calibration, context = 64, eval_tokens = 256 });
        var (job, _) = await _host.WaitAsync(id);
        Assert.True((string?)job["status"] == "succeeded", job.ToJsonString());
        Assert.Equal("awq-int4-g32", (string?)job["method"]);
        var report = job["result"]!["report"]!;
        // Calibrated on stories, evaluated on the built-in prose slice, where the story model is poor: 0.86 measured.
        Assert.InRange((double)report["perplexity_ratio"]!, 0.5, 1.5);
        Assert.InRange((double)report["kld_mean"]!, 1e-6, 0.8);
        Assert.Equal("int4-g32-asym", (string?)report["tensor_formats"]!["blk.0.attn_q.weight"]);
        string folder = Path.Combine(_data, "models", "stories260K:awq-int4-g32");
        using (var model = ModelLoader.Load(folder))
        {
            Assert.Equal("quantserve", model.SourceFormat);
            Assert.Equal("int4-g32-asym", model.Weights.Layers[4].Down.Format.Name);
        }
        var completion = await _host.Client.PostAsJsonAsync("/v1/completions",
            new { model = "stories260K:awq-int4-g32", prompt = "Once upon a time", max_tokens = 8, temperature = 0 });
        Assert.True(completion.StatusCode == HttpStatusCode.OK, await completion.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Submit_ProseF16ToQ4_K_M_TensorTypesMatchLlamaQuantize()
    {
        string id = await _host.SubmitAsync(QuantizeEndpointTests.ShortJob("q4_k_m"));
        var (job, _) = await _host.WaitAsync(id);
        Assert.True((string?)job["status"] == "succeeded", job.ToJsonString());
        Assert.Equal("Q4_K_M", (string?)job["method"]);
        var report = job["result"]!["report"]!;
        Assert.Equal("prose-15m-f16:q4_k_m", (string?)job["result"]!["model_id"]);

        // llama-quantize's own Q4_K_M file of the same model is the reference for the per-tensor types.
        using var ours = GgufFile.Open(Path.Combine(_data, "models", "prose-15m-f16:q4_k_m.gguf"));
        using var theirs = GgufFile.Open(Path.Combine(JobHost.ProseGgufDir, "prose-15m-Q4_K_M.gguf"));
        var expected = theirs.Tensors.ToDictionary(t => t.Name, t => t.Type.ToString());
        var actual = ours.Tensors.ToDictionary(t => t.Name, t => t.Type.ToString());
        Assert.Equal(expected.OrderBy(p => p.Key), actual.OrderBy(p => p.Key));
        foreach (var (name, type) in actual) Assert.Equal(type, (string?)report["tensor_formats"]![name]);
        Assert.Contains("Q6_K", actual.Values);
        Assert.Contains("Q4_K", actual.Values);
        Assert.InRange((double)report["perplexity_ratio"]!, 0.95, 1.1);
        Console.WriteLine($"Q4_K_M job: size {report["size_bytes"]}, bpw {report["bits_per_weight"]}, ppl ratio {report["perplexity_ratio"]}, kld {report["kld_mean"]}, stages {report["stage_seconds"]!.ToJsonString()}");
    }

    [Fact]
    public async Task Submit_GgufSourceWithNf4_ProblemDetails()
    {
        var r = await _host.Client.PostAsJsonAsync("/quantize", new { model = "prose-15m-f16", method = "nf4" });
        Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        Assert.Equal("application/problem+json", r.Content.Headers.ContentType?.MediaType);
        string detail = (string?)JsonNode.Parse(await r.Content.ReadAsStringAsync())!["detail"] ?? "";
        Assert.Contains("GGUF", detail);
        Assert.Contains("Q4_K_M", detail);
        var list = JsonNode.Parse(await _host.Client.GetStringAsync("/quantize"))!;
        Assert.Equal(0, (long)list["total"]!);
    }

    [Fact]
    public async Task Submit_UnknownMethod_ListsPresetsAndQuantServeTypes()
    {
        var r = await _host.Client.PostAsJsonAsync("/quantize", new { model = "stories260K", method = "int4-g99999999999999" });
        Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        string detail = (string?)JsonNode.Parse(await r.Content.ReadAsStringAsync())!["detail"] ?? "";
        foreach (var name in new[] { "Q4_K_M", "Q8_0", "F16", "int8", "int4-g32", "nf4", "nf4-dq", "fp4", "llm-int8" })
            Assert.Contains(name, detail);
    }

    [Theory]
    [InlineData("q4_k_m", "Q4_K_M")]
    [InlineData("Q4_K", "Q4_K_M")]
    [InlineData(" q8_0 ", "Q8_0")]
    [InlineData("INT4-G32", "int4-g32")]
    [InlineData("int8-g0", "int8")]
    [InlineData("NF4-DQ", "nf4-dq")]
    [InlineData("GPTQ-INT4-G128", "gptq-int4-g128")]
    [InlineData("gptq-int3-g128-act", "gptq-int3-g128-act")]
    [InlineData("gptq-int5-g128", null)]
    [InlineData("int4-g99999999999999", null)]
    [InlineData("AWQ-INT4-G128", "awq-int4-g128")]
    [InlineData("awq-int3-g128", "awq-int3-g128")]
    [InlineData("awq-int8-g128", null)]
    [InlineData("Q9_9", null)]
    [InlineData("", null)]
    public void Canonical_MethodSpellings_PresetOrRtnName(string method, string? expected)
        => Assert.Equal(expected, QuantServe.Api.Quantization.QuantizationMethods.Canonical(method));

    [Fact]
    public async Task Start_LeftoverPartialFilesAndFolders_Removed()
    {
        string data = JobHost.NewDataDirectory();
        try
        {
            string models = Path.Combine(data, "models");
            Directory.CreateDirectory(Path.Combine(models, ".partial-dead1"));
            File.WriteAllText(Path.Combine(models, ".partial-dead1", "config.json"), "{}");
            Directory.CreateDirectory(Path.Combine(models, "..partial-dead2.0123.tmp"));
            File.WriteAllText(Path.Combine(models, ".partial-dead3.gguf"), "x");
            File.WriteAllText(Path.Combine(models, "..partial-dead4.gguf.0123.tmp"), "x");
            await using var host = new JobHost(data);
            var r = await host.Client.GetAsync("/quantize");
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (Directory.GetFileSystemEntries(models, ".*").Length > 0 && DateTime.UtcNow < deadline) await Task.Delay(50);
            Assert.Empty(Directory.GetFileSystemEntries(models, ".*"));
        }
        finally
        {
            JobHost.DeleteDirectory(data);
        }
    }
}
