using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using QuantServe.Api.Tests.Quantization;

namespace QuantServe.Api.Tests.Models;

public sealed class ModelPlanningEndpointTests : IAsyncLifetime
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
    public async Task Vram_ProseF16_WeightsAndKvCacheExact()
    {
        var v = JsonNode.Parse(await _host.Client.GetStringAsync("/models/prose-15m-f16/vram?context=256&batch=2"))!;
        // F16 matrices: embedding 32000×256 (tied head) + per layer q 256×256, k and v 128×256, o 256×256,
        // gate/up/down 768×256 (×3); F32 norms: 2×256 per layer + 256 final.
        long embedding = 32000L * 256 * 2;
        long perLayer = (256L * 256 + 128 * 256 + 128 * 256 + 256 * 256 + 3 * 768 * 256) * 2 + 2 * 256 * 4;
        long weights = embedding + 8 * perLayer + 256 * 4;
        Assert.Equal(28_984_320, weights);
        Assert.Equal(weights, (long)v["weights_bytes"]!);
        // 2 (K,V) × 8 layers × 4 KV heads × 32 head_dim × 256 positions × 2 sequences × 2 bytes.
        Assert.Equal(2L * 8 * 4 * 32 * 256 * 2 * 2, (long)v["kv_cache_bytes"]!);
        long total = (long)v["weights_bytes"]! + (long)v["kv_cache_bytes"]! + (long)v["activations_bytes"]! + (long)v["overhead_bytes"]!;
        Assert.Equal(total, (long)v["total_bytes"]!);
        Assert.Equal([8, 12, 16, 24, 40, 48, 80, 141], v["fits_gb"]!.AsArray().Select(x => (int)x!).ToArray());
        // Where it runs; resident bytes are reported only for a model on a GPU (this host has none in CI).
        string device = (string)v["device"]!;
        Assert.Equal(device == "cpu", v["resident"] is null);
        Assert.Contains($"quantserve_model_vram_bytes{{component=\"total\",device=\"{device}\",model=\"prose-15m-f16\"", await _host.Client.GetStringAsync("/metrics"));

        var q8 = JsonNode.Parse(await _host.Client.GetStringAsync("/models/prose-15m-f16/vram?context=256&batch=2&kv_cache_type=q8_0"))!;
        // q8_0 rows of 128 elements: 4 blocks × 34 bytes.
        Assert.Equal(2L * 8 * 256 * 2 * 4 * 34, (long)q8["kv_cache_bytes"]!);

        var bad = await _host.Client.GetAsync("/models/prose-15m-f16/vram?kv_cache_type=q3");
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await _host.Client.GetAsync("/models/nope/vram")).StatusCode);
    }

    [Fact]
    public async Task Plan_TightBudget_RecommendsLeastDegradationThatFits()
    {
        var wide = await _host.Client.PostAsJsonAsync("/models/prose-15m-f16/plan", new { memory_budget_gb = 8, context = 256 });
        var plan = JsonNode.Parse(await wide.Content.ReadAsStringAsync())!;
        Assert.Equal(HttpStatusCode.OK, wide.StatusCode);
        Assert.StartsWith("keep:", (string?)plan["recommended"]!["method"]);

        // Just above Q4_0's estimate: Q4_0 or a smaller type fits, Q8_0 and F16 do not.
        var candidates = plan["candidates"]!.AsArray();
        long q40 = candidates.Where(c => (string?)c!["method"] == "Q4_0").Select(c => (long)c!["estimated_bytes"]!).Single();
        var tight = JsonNode.Parse(await (await _host.Client.PostAsJsonAsync("/models/prose-15m-f16/plan",
            new { memory_budget_bytes = q40, context = 256 })).Content.ReadAsStringAsync())!;
        var rec = tight["recommended"]!;
        Assert.True((bool)rec["fits"]!);
        Assert.True((long)rec["estimated_bytes"]! <= q40);
        foreach (var c in tight["candidates"]!.AsArray().Where(c => (bool)c!["fits"]!))
            Assert.True((double)c!["expected_kld"]! >= (double)rec["expected_kld"]!);
        Assert.Equal("prior", (string?)rec["basis"]);

        var none = await _host.Client.PostAsJsonAsync("/models/prose-15m-f16/plan", new { context = 256 });
        Assert.Equal(HttpStatusCode.BadRequest, none.StatusCode);
    }
}
