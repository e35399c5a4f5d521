namespace QuantServe.Engine.Evaluation;

/// <summary>
/// How far a model's next-token distributions are from a base model's on the same scored tokens (llama-perplexity
/// <c>--kl-divergence</c>): KL(p_base ‖ p_model) per token over the full vocabulary, in nats.
/// </summary>
/// <param name="Model">Perplexity of the evaluated model.</param>
/// <param name="Base">Perplexity of the base model on the same tokens.</param>
/// <param name="Mean">Mean KL divergence.</param>
/// <param name="MeanStdErr">Its standard error as llama.cpp computes it: sqrt((mean(KL²) − mean²)/(N − 1)), 0 for N ≤ 10.</param>
/// <param name="Median">Median KL divergence (llama.cpp's percentile interpolation at 0.5).</param>
/// <param name="P99">99th percentile: with the N values sorted and x = 0.99·(N − 1), v[⌊x⌋]·(1 − f) + v[⌊x⌋+1]·f, f = x − ⌊x⌋.</param>
/// <param name="Max">Largest per-token KL divergence.</param>
/// <param name="Top1Agreement">Percentage of scored tokens where both models rank the same token first.</param>
/// <param name="Top1StdErr">Its standard error in percent: 100·sqrt(p(1 − p)/(N − 1)).</param>
/// <param name="TokensScored">N.</param>
/// <param name="Seconds">Wall time (both models).</param>
public sealed record KlDivergenceResult(PerplexityResult Model, PerplexityResult Base, double Mean, double MeanStdErr, double Median,
    double P99, double Max, double Top1Agreement, double Top1StdErr, int TokensScored, double Seconds)
{
    /// <summary>llama.cpp's percentile of ascending-sorted values: linear interpolation between the two nearest ranks.</summary>
    public static double Percentile(ReadOnlySpan<float> sorted, double fraction)
    {
        if (sorted.IsEmpty) return 0;
        if (fraction <= 0) return sorted[0];
        if (fraction >= 1) return sorted[^1];
        double x = fraction * (sorted.Length - 1);
        int i = (int)x;
        double f = x - i;
        return (1 - f) * sorted[i] + f * sorted[Math.Min(i + 1, sorted.Length - 1)];
    }
}
