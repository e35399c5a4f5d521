using QuantServe.Engine.Inference;

namespace QuantServe.Engine.Tests.Inference;

public class SamplerTests
{
    private static float[] RandomLogits(int n, int seed)
    {
        var r = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (float)(r.NextDouble() * 6 - 3)).ToArray();
    }

    private static List<int> Draws(SamplingOptions options, float[] logits, int count, int[]? history = null)
    {
        var sampler = new Sampler(logits.Length, options);
        var result = new List<int>();
        for (int i = 0; i < count; i++) result.Add(sampler.Sample(logits.ToArray(), history ?? []));
        return result;
    }

    [Fact]
    public void Sample_SameSeed_ReproducesTokens()
    {
        var logits = RandomLogits(512, 1);
        var options = new SamplingOptions { Temperature = 1.2f, TopP = 0.95f, Seed = 42 };
        var a = Draws(options, logits, 100);
        Assert.Equal(a, Draws(options, logits, 100));
        Assert.NotEqual(a, Draws(options with { Seed = 43 }, logits, 100));
    }

    [Fact]
    public void Sample_TopK1AtTemperatureOne_EqualsGreedy()
    {
        for (int seed = 0; seed < 20; seed++)
        {
            var logits = RandomLogits(300, seed);
            int greedy = Sampler.ArgMax(logits);
            Assert.All(Draws(new SamplingOptions { TopK = 1, Seed = (ulong)seed }, logits, 5), t => Assert.Equal(greedy, t));
        }
    }

    [Fact]
    public void Sample_GreedyWithTies_PicksLowestId()
    {
        var logits = new[] { 0f, 2f, 1f, 2f, 2f };
        Assert.Equal(1, new Sampler(5, SamplingOptions.Greedy).Sample(logits, []));
    }

    [Fact]
    public void Sample_RepetitionPenalty_DividesPositiveAndMultipliesNegativeLogitsOfSeenTokens()
    {
        var logits = new[] { 2f, -2f, 3f, -1f, 0.5f };
        var sampler = new Sampler(5, SamplingOptions.Greedy with { RepetitionPenalty = 2f });
        sampler.Sample(logits, [0, 1, 1]);
        Assert.Equal(new[] { 1f, -4f, 3f, -1f, 0.5f }, logits);
    }

    [Fact]
    public void Sample_PresenceAndFrequencyPenalties_SubtractPerOccurrence()
    {
        var logits = new[] { 1f, 1f, 1f, 1f };
        var sampler = new Sampler(4, SamplingOptions.Greedy with { PresencePenalty = 0.5f, FrequencyPenalty = 0.25f });
        sampler.Sample(logits, [2, 0, 2, 2]);
        Assert.Equal(new[] { 1f - 0.25f - 0.5f, 1f, 1f - 0.75f - 0.5f, 1f }, logits);
    }

    [Fact]
    public void Sample_PenaltyWindow_IgnoresOlderTokens()
    {
        var logits = new[] { 1f, 1f, 1f, 1f };
        var sampler = new Sampler(4, SamplingOptions.Greedy with { PresencePenalty = 1f, PenaltyWindow = 2 });
        sampler.Sample(logits, [0, 1, 2, 2]);
        Assert.Equal(new[] { 1f, 1f, 0f, 1f }, logits);
        // Counts are reset between calls: the same history penalises the same amount again.
        logits = [1f, 1f, 1f, 1f];
        sampler.Sample(logits, [0, 1, 2, 2]);
        Assert.Equal(new[] { 1f, 1f, 0f, 1f }, logits);
    }

    [Fact]
    public void Sample_LogitBias_ChangesTheChoice()
    {
        var logits = new[] { 5f, 1f, 0f };
        var sampler = new Sampler(3, SamplingOptions.Greedy with { LogitBias = new Dictionary<int, float> { [2] = 10f } });
        Assert.Equal(2, sampler.Sample(logits, []));
    }

    [Fact]
    public void Sample_Logprobs_AreLogSoftmaxAfterBiasBeforeTemperature()
    {
        var raw = RandomLogits(50, 3);
        var bias = new Dictionary<int, float> { [7] = 2f };
        var biased = raw.ToArray();
        biased[7] += 2f;
        double logZ = Math.Log(biased.Sum(v => Math.Exp(v)));
        foreach (float temperature in new[] { 0f, 0.5f, 2f })
        {
            var sampler = new Sampler(50, new SamplingOptions { Temperature = temperature, LogitBias = bias, TopLogprobs = 4, Seed = 1, RepetitionPenalty = 3f });
            int token = sampler.Sample(raw.ToArray(), [7]);
            Assert.Equal(biased[token] - logZ, sampler.LastLogprob, 4);
            var top = sampler.LastTopLogprobs.ToArray();
            var expectedTop = biased.Select((v, i) => (v, i)).OrderByDescending(p => p.v).Take(4).Select(p => p.i).ToArray();
            Assert.Equal(expectedTop, top.Select(t => t.Token).ToArray());
            Assert.All(top, t => Assert.Equal(biased[t.Token] - logZ, t.Logprob, 4));
        }
    }

    [Fact]
    public void Sample_TopP_KeepsOnlyTheNucleus()
    {
        var logits = new[] { MathF.Log(0.5f), MathF.Log(0.3f), MathF.Log(0.15f), MathF.Log(0.05f) };
        var seen = Draws(new SamplingOptions { TopP = 0.7f, Seed = 5 }, logits, 400).ToHashSet();
        Assert.Equal(new HashSet<int> { 0, 1 }, seen);
    }

    [Fact]
    public void Sample_TopK_KeepsOnlyTheKMostLikely()
    {
        var logits = RandomLogits(100, 9);
        var best = logits.Select((v, i) => (v, i)).OrderByDescending(p => p.v).Take(3).Select(p => p.i).ToHashSet();
        var seen = Draws(new SamplingOptions { TopK = 3, Temperature = 5f, Seed = 2 }, logits, 300).ToHashSet();
        Assert.Equal(best, seen);
    }

    [Fact]
    public void Sample_MinP_DropsTokensBelowFractionOfTop()
    {
        var logits = new[] { MathF.Log(0.4f), MathF.Log(0.3f), MathF.Log(0.19f), MathF.Log(0.11f) };
        var seen = Draws(new SamplingOptions { MinP = 0.5f, Seed = 3 }, logits, 400).ToHashSet();
        Assert.Equal(new HashSet<int> { 0, 1 }, seen);
    }

    [Fact]
    public void Sample_TemperatureOne_FollowsSoftmaxFrequencies()
    {
        var probs = new[] { 0.1, 0.2, 0.3, 0.4 };
        var logits = probs.Select(p => (float)Math.Log(p)).ToArray();
        var draws = Draws(new SamplingOptions { Seed = 11 }, logits, 20000);
        for (int i = 0; i < 4; i++)
            Assert.InRange(draws.Count(t => t == i) / 20000.0, probs[i] - 0.015, probs[i] + 0.015);
    }

    [Theory]
    [InlineData(-1f, 0, 1f, 0f)]
    [InlineData(1f, -1, 1f, 0f)]
    [InlineData(1f, 0, 0f, 0f)]
    [InlineData(1f, 0, 1.5f, 0f)]
    [InlineData(1f, 0, 1f, 2f)]
    public void Constructor_InvalidOptions_ThrowsArgumentException(float temperature, int topK, float topP, float minP) =>
        Assert.Throws<ArgumentException>(() => new Sampler(10, new SamplingOptions { Temperature = temperature, TopK = topK, TopP = topP, MinP = minP }));

    [Fact]
    public void Constructor_BiasOutsideVocabulary_ThrowsArgumentException() =>
        Assert.Throws<ArgumentException>(() => new Sampler(10, new SamplingOptions { LogitBias = new Dictionary<int, float> { [10] = 1f } }));
}
