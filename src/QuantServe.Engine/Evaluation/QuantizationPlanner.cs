using QuantServe.Engine.Models;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Evaluation;

/// <summary>One precision the planner considered.</summary>
/// <param name="Method">ggml type name (or the model's current precision for <c>keep</c>).</param>
/// <param name="WeightsBytes">Estimated stored weight bytes.</param>
/// <param name="Vram">VRAM estimate at the requested context and batch.</param>
/// <param name="Fits">Whether the total fits the budget.</param>
/// <param name="ExpectedKld">Expected mean KL divergence from the source.</param>
/// <param name="Basis"><c>measured</c> (a finished job's report), <c>prior</c> (llama.cpp's reference) or <c>source</c>.</param>
public sealed record PlanCandidate(string Method, long WeightsBytes, VramEstimate Vram, bool Fits, double ExpectedKld, string Basis);

/// <summary>A plan: every candidate and the recommended one (null when nothing fits).</summary>
public sealed record QuantizationPlan(long BudgetBytes, PlanCandidate? Recommended, IReadOnlyList<PlanCandidate> Candidates);

/// <summary>
/// Recommends the precision that fits a memory budget with the least expected degradation. Bytes per matrix are
/// exact for each ggml type (rows × rowBytes(type, cols); matrices whose width the type cannot hold keep their current
/// bytes); degradation is the mean KL divergence measured by a finished job of that model and type when one exists,
/// otherwise the prior: llama.cpp's <c>llama-perplexity --kl-divergence</c> mean KLD against F16 for the preset built on
/// that type (Q8_0 0.000455, Q6_K 0.002827, Q5_K_M 0.006093, Q5_1 0.007397, Q5_0 0.009280, Q4_K_M 0.019120,
/// Q4_1 0.029601, Q4_0 0.033649, Q3_K_M 0.061684, Q2_K 0.263650; measured on prose-15m, see
/// shared/models/prose-15m-gguf/llama-cpp-reference.md). Ties go to the smaller total.
/// </summary>
public static class QuantizationPlanner
{
    /// <summary>Prior mean KLD per ggml type.</summary>
    public static IReadOnlyDictionary<GgmlType, double> PriorKld { get; } = new Dictionary<GgmlType, double>
    {
        [GgmlType.Q8_0] = 0.000455, [GgmlType.Q6_K] = 0.002827, [GgmlType.Q5_K] = 0.006093, [GgmlType.Q5_1] = 0.007397,
        [GgmlType.Q5_0] = 0.009280, [GgmlType.Q4_K] = 0.019120, [GgmlType.Q4_1] = 0.029601, [GgmlType.Q4_0] = 0.033649,
        [GgmlType.Q3_K] = 0.061684, [GgmlType.Q2_K] = 0.263650,
    };

    /// <summary>Stored bytes of <paramref name="model"/>'s weights if its matrices were stored as <paramref name="type"/>.</summary>
    public static long WeightsBytesAs(LoadedModel model, GgmlType type)
    {
        long total = model.WeightBytes;
        foreach (var m in model.Weights.Matrices.DistinctBy(m => m.Name))
        {
            if (GgmlTypeInfo.Geometry(type) is not { } g || m.Cols % g.BlockSize != 0) continue;
            total += GgmlTypeInfo.RowBytes(type, m.Cols) * m.Rows - m.ByteCount;
        }
        return total;
    }

    /// <summary>Plans for <paramref name="model"/>; <paramref name="measuredKld"/> maps a ggml type name (upper case) to a measured mean KLD.</summary>
    public static QuantizationPlan Plan(LoadedModel model, long budgetBytes, int context, int batch, KvCacheType kvType,
        IReadOnlyDictionary<string, double> measuredKld)
    {
        var candidates = new List<PlanCandidate>();
        var keep = VramEstimator.Estimate(model, context, batch, kvType);
        candidates.Add(new PlanCandidate("keep:" + model.Precision, model.WeightBytes, keep, keep.TotalBytes <= budgetBytes, 0, "source"));
        foreach (var (type, prior) in PriorKld)
        {
            long bytes = WeightsBytesAs(model, type);
            var v = VramEstimator.Estimate(model.Config, bytes, context, batch, kvType);
            string name = type.ToString().ToUpperInvariant();
            bool measured = measuredKld.TryGetValue(name, out double kld);
            candidates.Add(new PlanCandidate(name, bytes, v, v.TotalBytes <= budgetBytes, measured ? kld : prior, measured ? "measured" : "prior"));
        }
        var best = candidates.Where(c => c.Fits).OrderBy(c => c.ExpectedKld).ThenBy(c => c.Vram.TotalBytes).FirstOrDefault();
        return new QuantizationPlan(budgetBytes, best, candidates.OrderBy(c => c.Vram.TotalBytes).ToList());
    }
}
