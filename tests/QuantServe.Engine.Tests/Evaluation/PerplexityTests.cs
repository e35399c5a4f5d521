using QuantServe.Engine.Evaluation;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Evaluation;

public sealed class PerplexityTests
{
    [Fact]
    public void Compute_Prose15mF16OnTextPrefix_EqualsExpOfTextGeneratorLogLikelihoods()
    {
        using var model = ModelLoader.Load(EvalText.Prose15mF16);
        var windows = EvaluationWindows.Create(model, EvalText.Prefix, 32, maxChunks: 2);
        var result = Perplexity.Compute(model, windows);

        // The same windows scored independently: BOS first, log p of tokens first+1 .. n_ctx−1.
        var generator = new TextGenerator(model);
        var window = new int[32];
        var nlls = new List<double>();
        for (int chunk = 0; chunk < 2; chunk++)
        {
            windows.CopyWindow(chunk, window);
            Assert.Equal(model.Tokenizer.BosId, window[0]);
            var lp = generator.LogLikelihood(window);
            for (int i = windows.First + 1; i < 32; i++) nlls.Add(-lp.TokenLogprobs[i]);
        }
        Assert.Equal(2 * 15, result.TokensScored);
        Assert.Equal(nlls.Count, result.TokensScored);
        Assert.Equal(nlls.Average(), result.MeanNll, 4);
        Assert.Equal(Math.Exp(nlls.Average()), result.Value, Math.Exp(nlls.Average()) * 1e-4);
        double mean = nlls.Average(), var2 = nlls.Select(v => v * v).Average() - mean * mean;
        Assert.Equal(Math.Sqrt(var2 / (nlls.Count - 1)) * result.Value, result.StdErr, result.StdErr * 1e-3);
    }

    [Fact]
    public void Create_Windows_FollowLlamaPerplexityLayout()
    {
        using var model = ModelLoader.Load(EvalText.Prose15mF16);
        var text = EvalText.BibleThenPydoc[..20000];
        var tokens = model.Tokenizer.Encode(text, addBos: true);
        var windows = EvaluationWindows.Create(model, text, 256);
        Assert.Equal(tokens.Length, windows.TextTokens);
        Assert.Equal(tokens.Length / 256, windows.Chunks);
        Assert.Equal(128, windows.First);
        Assert.Equal(127, windows.ScoredPerWindow);
        var window = new int[256];
        windows.CopyWindow(1, window);
        Assert.Equal(model.Tokenizer.BosId, window[0]);
        Assert.Equal(tokens.AsSpan(257, 255).ToArray(), window[1..]);
    }

    [Fact]
    public void Create_TextShorterThanTwoWindows_Throws()
    {
        using var model = ModelLoader.Load(EvalText.Prose15mF16);
        var e = Assert.Throws<ArgumentException>(() => EvaluationWindows.Create(model, "In the beginning God created the heaven and the earth.", 64));
        Assert.Contains("2·ctx = 128", e.Message);
        Assert.Throws<ArgumentException>(() => EvaluationWindows.Create(model, EvalText.Prefix, 4096));
    }

    [Fact]
    [Trait("Category", "Slow")]
    public void Compute_Prose15mF16OnBibleAndPydocCtx256_MatchesLlamaCppPerplexity()
    {
        using var model = ModelLoader.Load(EvalText.Prose15mF16);
        var result = Perplexity.Compute(model, EvalText.BibleThenPydoc, 256);
        // llama-cpp-reference.md: F16 perplexity 18.5138 ± 0.2861.
        Assert.InRange(result.Value, 18.5138 * 0.995, 18.5138 * 1.005);
        Assert.InRange(result.StdErr, 0.2861 * 0.95, 0.2861 * 1.05);
        Assert.Equal(result.Chunks * 127, result.TokensScored);
    }

    [Fact]
    [Trait("Category", "Slow")]
    public void Compute_Stories260KOnItsSamples_IsPlausible()
    {
        using var model = ModelLoader.Load(SharedAssets.Stories260K);
        var text = File.ReadAllText(SharedAssets.Path("eval", "stories260k-samples.txt"));
        var result = Perplexity.Compute(model, text, 256);
        // Sampled at temperature 1 from this model, the text is in-distribution: the perplexity is well above 1 and far
        // below the 512-token vocabulary's uniform perplexity of 512.
        Assert.InRange(result.Value, 2, 20);
        Assert.True(result.Chunks >= 2);
    }
}
