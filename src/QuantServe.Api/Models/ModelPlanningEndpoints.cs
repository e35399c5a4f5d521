using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http.HttpResults;
using QuantServe.Api.OpenAi;
using QuantServe.Api.Quantization;
using QuantServe.Api.Registry;
using QuantServe.Api.Serving;
using QuantServe.Engine.Evaluation;

namespace QuantServe.Api.Models;

/// <summary>GET /models/{id}/vram and POST /models/{id}/plan.</summary>
public static class ModelPlanningEndpoints
{
    /// <summary>Body of a plan request: a budget in bytes or GB (2^30 bytes), and the context/batch to serve.</summary>
    public sealed record PlanRequest
    {
        /// <summary>Budget in bytes.</summary>
        [JsonPropertyName("memory_budget_bytes")] public long? MemoryBudgetBytes { get; init; }
        /// <summary>Budget in GB (2^30 bytes).</summary>
        [JsonPropertyName("memory_budget_gb")] public double? MemoryBudgetGb { get; init; }
        /// <summary>Context per sequence (default: min(model context, 4096)).</summary>
        [JsonPropertyName("context")] public int? Context { get; init; }
        /// <summary>Sequences (default 1).</summary>
        [JsonPropertyName("batch")] public int? Batch { get; init; }
        /// <summary>f16 | f32 | q8_0.</summary>
        [JsonPropertyName("kv_cache_type")] public string? KvCacheType { get; init; }
    }

    /// <summary>Maps the endpoints.</summary>
    public static IEndpointRouteBuilder MapModelPlanning(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/models").WithTags("Models");
        g.MapGet("/{id}/vram", Vram).WithName("ModelVram")
            .WithSummary("Estimated accelerator memory (weights as stored, KV cache, activations, overhead, total, the GPU sizes it fits) and, for a model resident on a GPU, the bytes the backend allocated.");
        g.MapPost("/{id}/plan", Plan).WithName("ModelPlan")
            .WithSummary("The precision that fits a memory budget with the least measured or estimated degradation, and every candidate.");
        return app;
    }

    private static ProblemHttpResult Problem(int status, string title, string detail) => TypedResults.Problem(detail: detail, statusCode: status, title: title);

    private static async Task<Results<Ok<object>, ProblemHttpResult>> Vram(string id, int? context, int? batch, string? kv_cache_type,
        ModelRegistry registry, QuantizationTelemetry telemetry, SchedulerPool schedulers, ServingDevice device, CancellationToken ct)
    {
        if (registry.Find(id) is null) return Problem(404, "Unknown model", $"no model '{id}'");
        if (VramEstimator.ParseKvCacheType(kv_cache_type) is not { } kv) return Problem(400, "Bad kv_cache_type", "kv_cache_type is f16, f32 or q8_0");
        using var lease = await Lease(registry, id, ct);
        int ctx = context ?? lease.Model.Config.ContextLength, b = batch ?? 1;
        if (ctx <= 0 || b <= 0) return Problem(400, "Bad parameters", "context and batch must be positive");
        var v = VramEstimator.Estimate(lease.Model, ctx, b, kv);
        // The resident backend's caches are F32 whatever the estimate's type; the comparison uses its own cache size.
        var scheduler = schedulers.Find(lease.Model);
        object? resident = null;
        if (scheduler is { ResidentBytes: > 0 } && device.MemoryInfo() is { } memory)
        {
            long perSequence = scheduler.CacheBytesFor(Math.Min(ctx, scheduler.Context));
            long kvBytes = perSequence * b;
            telemetry.RecordVram(id, lease.Model.Precision, v, scheduler.Device, scheduler.ResidentBytes, kvBytes);
            resident = new
            {
                device = scheduler.Device, device_name = device.Description,
                model_bytes = scheduler.ResidentBytes, kv_cache_bytes = kvBytes, kv_cache_bytes_per_sequence = perSequence,
                kv_cache_type = "f32", total_bytes = scheduler.ResidentBytes + kvBytes,
                context = Math.Min(ctx, scheduler.Context),
                live_kv_cache_bytes = scheduler.CacheBytes, live_sequences = scheduler.Running,
                device_free_bytes = memory.Free, device_total_bytes = memory.Total,
                // What the driver reports in use beyond the baseline after the backend opened: every model and cache of
                // the process including the pool's size-class rounding and cached free blocks.
                device_used_since_start_bytes = memory.Total - memory.Free - device.UsedAtStartBytes,
                device_used_at_start_bytes = device.UsedAtStartBytes,
            };
        }
        else telemetry.RecordVram(id, lease.Model.Precision, v, schedulers.DeviceOf(lease.Model));
        return TypedResults.Ok((object)new
        {
            model = id, precision = lease.Model.Precision, device = schedulers.DeviceOf(lease.Model), weights_bytes = v.WeightsBytes, kv_cache_bytes = v.KvCacheBytes,
            activations_bytes = v.ActivationsBytes, overhead_bytes = v.OverheadBytes, total_bytes = v.TotalBytes,
            context = v.Context, batch = v.Batch, kv_cache_type = v.KvCacheType.ToString().ToLowerInvariant(), fits_gb = v.Fits,
            resident,
        });
    }

    private static async Task<ModelLease> Lease(ModelRegistry registry, string id, CancellationToken ct)
    {
        try { return await registry.AcquireAsync(id, ct); }
        catch (OpenAiException) { throw new BadHttpRequestException($"no model '{id}'", 404); }
    }

    private static async Task<Results<Ok<object>, ProblemHttpResult>> Plan(string id, PlanRequest request, ModelRegistry registry, JobStore store,
        CancellationToken ct)
    {
        if (registry.Find(id) is null) return Problem(404, "Unknown model", $"no model '{id}'");
        long? budget = request.MemoryBudgetBytes ?? (request.MemoryBudgetGb is { } gb ? (long)(gb * (1L << 30)) : null);
        if (budget is not > 0) return Problem(400, "Missing budget", "give memory_budget_bytes or memory_budget_gb (> 0)");
        if (VramEstimator.ParseKvCacheType(request.KvCacheType) is not { } kv) return Problem(400, "Bad kv_cache_type", "kv_cache_type is f16, f32 or q8_0");
        using var lease = await Lease(registry, id, ct);
        int ctx = request.Context ?? Math.Min(lease.Model.Config.ContextLength, 4096), b = request.Batch ?? 1;
        if (ctx <= 0 || b <= 0) return Problem(400, "Bad parameters", "context and batch must be positive");

        var measured = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var job in store.Succeeded(id))
        {
            using var doc = JsonDocument.Parse(job.ResultJson!);
            if (doc.RootElement.TryGetProperty("report", out var r) && r.TryGetProperty("kld_mean", out var k) && k.TryGetDouble(out double kld))
                measured[job.Method.ToUpperInvariant()] = kld;
        }
        var plan = QuantizationPlanner.Plan(lease.Model, budget.Value, ctx, b, kv, measured);
        object View(PlanCandidate c) => new
        {
            method = c.Method, fits = c.Fits, weights_bytes = c.WeightsBytes, estimated_bytes = c.Vram.TotalBytes,
            expected_kld = c.ExpectedKld, basis = c.Basis,
        };
        return TypedResults.Ok((object)new
        {
            model = id, memory_budget_bytes = plan.BudgetBytes, context = ctx, batch = b,
            recommended = plan.Recommended is { } rec ? View(rec) : null,
            candidates = plan.Candidates.Select(View).ToList(),
        });
    }
}
