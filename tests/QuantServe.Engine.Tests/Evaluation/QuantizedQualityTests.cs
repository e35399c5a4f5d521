using QuantServe.Engine.Evaluation;
using QuantServe.Engine.Models;

namespace QuantServe.Engine.Tests.Evaluation;

/// <summary>
/// Every llama.cpp-quantized prose-15m file against the F16 one on llama-cpp-reference.md's protocol
/// (<c>llama-perplexity -c 256 --kl-divergence</c> on bible.txt + pydoc.txt): perplexity within 0.5% of llama.cpp's and
/// KL divergence / top-1 agreement near its table. llama.cpp stores base log-probabilities as 16-bit values and drops
/// probabilities below e^−16; this side sums the exact full vocabulary, hence the KL tolerance.
/// </summary>
public sealed class QuantizedQualityTests
{
    [Theory]
    [Trait("Category", "Slow")]
    [InlineData("Q8_0", 18.526220, 0.000455, 0.002530, 98.603)]
    [InlineData("Q6_K", 18.587043, 0.002827, 0.015648, 96.403)]
    [InlineData("Q5_K_M", 18.661283, 0.006093, 0.035373, 95.076)]
    [InlineData("Q5_1", 18.643577, 0.007397, 0.042319, 94.688)]
    [InlineData("Q5_0", 18.620005, 0.009280, 0.053634, 94.113)]
    [InlineData("Q4_K_M", 18.717930, 0.019120, 0.112562, 91.803)]
    [InlineData("Q4_1", 18.899227, 0.029601, 0.174143, 90.046)]
    [InlineData("Q4_0", 18.848271, 0.033649, 0.192495, 89.358)]
    [InlineData("Q3_K_M", 19.248690, 0.061684, 0.358324, 86.041)]
    [InlineData("Q2_K", 21.857676, 0.263650, 1.479802, 72.664)]
    public void Compute_LlamaCppQuantizedAgainstF16_MatchesLlamaCppTable(string type, double ppl, double kldMean, double kldP99, double top1)
    {
        using var f16 = ModelLoader.Load(EvalText.Prose15mF16);
        using var quant = ModelLoader.Load(EvalText.Prose15mType(type));
        var r = KlDivergence.Compute(quant, f16, EvalText.BibleThenPydoc, 256);
        Assert.InRange(r.Model.Value, ppl * 0.995, ppl * 1.005);
        Assert.InRange(r.Base.Value, 18.5138 * 0.995, 18.5138 * 1.005);
        Assert.InRange(r.Mean, kldMean * 0.9 - 5e-5, kldMean * 1.1 + 5e-5);
        Assert.InRange(r.P99, kldP99 * 0.85 - 2e-4, kldP99 * 1.15 + 2e-4);
        Assert.InRange(r.Top1Agreement, top1 - 1.0, top1 + 1.0);
    }
}
