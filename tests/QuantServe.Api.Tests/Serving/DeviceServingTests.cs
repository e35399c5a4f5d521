using QuantServe.Engine.Tests.TestSupport;
using System.Net;
using System.Text.Json.Nodes;
using QuantServe.Api.Tests.TestSupport;

namespace QuantServe.Api.Tests.Serving;

/// <summary>The HTTP server on a CUDA device against the same server on the CPU (skipped without a GPU).</summary>
public sealed class DeviceServingTests
{
    private static readonly string[] Prompts = ["Once upon a time", "The little dog", "Lily wanted to", "One day, Tom"];

    private static async Task<List<string>> GreedyAsync(HttpClient client, string path)
    {
        var texts = new List<string>();
        foreach (var p in Prompts)
        {
            object body = path == "/v1/completions"
                ? new { model = "stories260K", prompt = p, max_tokens = 48, temperature = 0 }
                : new { model = "stories260K", messages = new[] { new { role = "user", content = p } }, max_tokens = 48, temperature = 0 };
            var (response, json) = await Json.PostAsync(client, path, body);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var choice = json["choices"]![0]!;
            texts.Add((string?)choice["text"] ?? (string)choice["message"]!["content"]!);
        }
        return texts;
    }

    [GpuFact]
    public async Task Greedy_CompletionsAndChatOnCuda_EqualTheCpuServersText()
    {
        await using var gpu = new QuantServeFactory(new() { ["QuantServe:Device"] = "cuda:0" });
        await using var cpu = new QuantServeFactory(new() { ["QuantServe:Device"] = "cpu" });
        using var g = gpu.CreateClient();
        using var c = cpu.CreateClient();
        await gpu.WaitReadyAsync();
        await cpu.WaitReadyAsync();
        Assert.Equal("cuda:0", (string?)JsonNode.Parse(await g.GetStringAsync("/v1/models/stories260K"))!["device"]);
        foreach (var path in new[] { "/v1/completions", "/v1/chat/completions" })
            Assert.Equal(await GreedyAsync(c, path), await GreedyAsync(g, path));
        // All at once: the device batch gives each sequence its own text.
        var together = await Task.WhenAll(Enumerable.Range(0, 16).Select(async i =>
        {
            var (_, json) = await Json.PostAsync(g, "/v1/completions", new { model = "stories260K", prompt = Prompts[i % 4], max_tokens = 48, temperature = 0 });
            return (string)json["choices"]![0]!["text"]!;
        }));
        var alone = await GreedyAsync(g, "/v1/completions");
        for (int i = 0; i < 16; i++) Assert.Equal(alone[i % 4], together[i]);
    }

    [GpuFact]
    public async Task Vram_ModelResidentOnCuda_ReportsAllocatedBytesNextToTheEstimate()
    {
        await using var gpu = new QuantServeFactory(new() { ["QuantServe:Device"] = "cuda:0" });
        using var g = gpu.CreateClient();
        await gpu.WaitReadyAsync();
        var b1 = JsonNode.Parse(await g.GetStringAsync("/models/stories260K/vram?batch=1&kv_cache_type=f32"))!;
        var b16 = JsonNode.Parse(await g.GetStringAsync("/models/stories260K/vram?batch=16&kv_cache_type=f32"))!;
        var r1 = b1["resident"]!;
        var r16 = b16["resident"]!;
        Assert.Equal("cuda:0", (string?)r1["device"]);
        Assert.True((long)r1["model_bytes"]! >= (long)b1["weights_bytes"]!);
        Assert.Equal((long)b1["kv_cache_bytes"]!, (long)r1["kv_cache_bytes"]!);
        Assert.Equal(16 * (long)r1["kv_cache_bytes"]!, (long)r16["kv_cache_bytes"]!);
    }
}
