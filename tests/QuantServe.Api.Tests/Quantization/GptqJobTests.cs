using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using QuantServe.Api.Tests.TestSupport;
using QuantServe.Engine.Models;

namespace QuantServe.Api.Tests.Quantization;

/// <summary>GPTQ jobs: a Hugging Face source calibrated on the job's text, written as a Hugging Face GPTQ checkpoint and served.</summary>
public sealed class GptqJobTests : IAsyncLifetime
{
    private readonly string _data = JobHost.NewDataDirectory();
    private readonly string _models = JobHost.NewDataDirectory();
    private JobHost _host = null!;

    public Task InitializeAsync()
    {
        Directory.CreateSymbolicLink(Path.Combine(_models, "prose-15m"), SharedAssets.Path("models", "prose-15m"));
        _host = new JobHost(_data, new() { ["QuantServe:ModelsDirectory"] = _models });
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _host.DisposeAsync();
        JobHost.DeleteDirectory(_data);
        JobHost.DeleteDirectory(_models);
    }

    [Fact]
    public async Task Submit_Prose15mToGptqInt4G128_ServesTheGptqCheckpoint()
    {
        string calibration = File.ReadAllText(SharedAssets.Path("eval", "bible.txt"))[..6000];
        string id = await _host.SubmitAsync(new { model = "prose-15m", method = "GPTQ-INT4-G128", calibration_text = calibration, context = 32, eval_tokens = 64 });
        var (job, seen) = await _host.WaitAsync(id, TimeSpan.FromMinutes(5));
        Assert.True((string?)job["status"] == "succeeded", job.ToJsonString());
        Assert.Equal("gptq-int4-g128", (string?)job["method"]);
        for (int i = 1; i < seen.Count; i++) Assert.True(seen[i].Progress >= seen[i - 1].Progress - 1e-9);
        var report = job["result"]!["report"]!;
        Assert.Equal("gptq-int4-g128", (string?)report["tensor_formats"]!["model.layers.7.mlp.down_proj.weight"]);
        Assert.InRange((double)report["perplexity_ratio"]!, 0.9, 1.3);
        // 4-bit codes plus a float scale and a zero byte per 128 weights in the run-time layout.
        Assert.InRange((double)report["bits_per_weight"]!, 4.0, 16.0);
        Console.WriteLine($"gptq-int4-g128 job: ppl ratio {report["perplexity_ratio"]}, kld {report["kld_mean"]}, stages {report["stage_seconds"]!.ToJsonString()}");

        string folder = Path.Combine(_data, "models", "prose-15m:gptq-int4-g128");
        Assert.Equal("safetensors", ModelLoader.DetectFormat(folder));
        Assert.Contains("\"quant_method\": \"gptq\"", File.ReadAllText(Path.Combine(folder, "config.json")));
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(_data, "models"), ".*"));

        var completion = await _host.Client.PostAsJsonAsync("/v1/completions",
            new { model = "prose-15m:gptq-int4-g128", prompt = "In the beginning God created", max_tokens = 8, temperature = 0 });
        string text = await completion.Content.ReadAsStringAsync();
        Assert.True(completion.StatusCode == HttpStatusCode.OK, text);
        Assert.False(string.IsNullOrEmpty((string?)JsonNode.Parse(text)!["choices"]![0]!["text"]));
    }

    [Fact]
    public async Task Submit_GptqFromGgufSource_ProblemDetails()
    {
        await using var host = new JobHost(JobHost.NewDataDirectory());
        var r = await host.Client.PostAsJsonAsync("/quantize", new { model = "prose-15m-f16", method = "gptq-int4-g128" });
        Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        string detail = (string?)JsonNode.Parse(await r.Content.ReadAsStringAsync())!["detail"] ?? "";
        Assert.Contains("GPTQ", detail);
        Assert.Contains("safetensors", detail);
    }
}
