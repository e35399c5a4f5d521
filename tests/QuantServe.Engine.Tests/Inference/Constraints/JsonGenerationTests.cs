using System.Text.Json;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Inference.Constraints;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Inference.Constraints;

/// <summary>The real stories260K model generating under <see cref="JsonConstraint"/> through <see cref="TextGenerator"/>.</summary>
public sealed class JsonGenerationTests : IDisposable
{
    private readonly LoadedModel _model = ModelLoader.Load(SharedAssets.Stories260K);

    public void Dispose() => _model.Dispose();

    [Theory]
    [InlineData(0UL, 12)]
    [InlineData(1UL, 40)]
    [InlineData(2UL, 120)]
    [InlineData(3UL, 120)]
    public void Generate_JsonConstraintWithSampling_TextIsJsonObjectWithinBudget(ulong seed, int maxTokens)
    {
        var generator = new TextGenerator(_model);
        var options = new GenerationOptions
        {
            MaxTokens = maxTokens,
            Sampling = new SamplingOptions { Temperature = 1f, Seed = seed },
            Constraint = JsonConstraint.Create,
        };
        var tokens = generator.Generate("Once upon a time", options).ToList();
        string text = string.Concat(tokens.Select(t => t.Text));
        Assert.Equal(FinishReason.Stop, tokens[^1].Finish);
        Assert.True(tokens.Count <= maxTokens + 1);
        using var doc = JsonDocument.Parse(text);
        Assert.Equal(JsonValueKind.Object, doc.RootElement.ValueKind);
    }

    [Fact]
    public void Generate_JsonConstraintGreedy_TextIsJsonObject()
    {
        var generator = new TextGenerator(_model);
        var options = new GenerationOptions { MaxTokens = 64, Sampling = SamplingOptions.Greedy, Constraint = JsonConstraint.Create };
        string text = string.Concat(generator.Generate("Lily wanted", options).Select(t => t.Text));
        using var doc = JsonDocument.Parse(text);
        Assert.Equal(JsonValueKind.Object, doc.RootElement.ValueKind);
    }
}

/// <summary>prose-15m (Llama-2 32k vocabulary, GGUF F16) generating under the JSON constraint.</summary>
public sealed class JsonGenerationProse15mTests(Xunit.Abstractions.ITestOutputHelper output) : IDisposable
{
    private readonly LoadedModel _model = ModelLoader.Load(SharedAssets.Path("models", "prose-15m-gguf", "prose-15m-f16.gguf"));

    public void Dispose() => _model.Dispose();

    [Fact]
    [Trait("Category", "Slow")]
    public void Generate_Prose15mJsonConstraint_TextIsJsonObject()
    {
        var generator = new TextGenerator(_model);
        foreach (var sampling in new[] { SamplingOptions.Greedy, new SamplingOptions { Temperature = 0.8f, Seed = 5 } })
        {
            var options = new GenerationOptions { MaxTokens = 40, Sampling = sampling, Constraint = JsonConstraint.Create };
            var sw = System.Diagnostics.Stopwatch.StartNew();
            var tokens = generator.Generate("The answer, as a JSON object:", options).ToList();
            double constrained = sw.Elapsed.TotalMilliseconds / tokens.Count;
            string text = string.Concat(tokens.Select(t => t.Text));
            output.WriteLine($"T={sampling.Temperature}: {tokens.Count} tokens, {constrained:F2} ms/token: {text}");
            Assert.Equal(FinishReason.Stop, tokens[^1].Finish);
            Assert.StartsWith("{", text);
            using var doc = JsonDocument.Parse(text);
            Assert.Equal(JsonValueKind.Object, doc.RootElement.ValueKind);
        }
    }
}
