using System.Text;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Inference;

/// <summary>stories260K must print exactly what llama2.c's run.c prints at temperature 0.</summary>
public class Stories260KGreedyTests
{
    /// <summary>
    /// Mirrors run.c's generate(): the prompt is encoded with BOS; <c>-n steps</c> runs forward at positions 0..steps−1, each
    /// producing the token at the next position, so the printed text covers positions 1..steps (prompt included) and
    /// steps − prompt_length + 1 tokens are generated. run.c stops when the sampled token is BOS (id 1; it ignores EOS), decodes
    /// each token after its predecessor (dropping the piece's leading space right after BOS) and prints a final newline.
    /// (run.c also skips unprintable single-byte pieces; these stories contain none.)
    /// </summary>
    private static string RunLikeLlama2c(TextGenerator generator, string prompt, int steps)
    {
        var tokenizer = generator.Model.Source.Tokenizer;
        var ids = tokenizer.Encode(prompt, addBos: true);
        var options = new GenerationOptions
        {
            MaxTokens = steps - ids.Length + 1,
            Sampling = SamplingOptions.Greedy,
            IgnoreEos = true,
            StopTokenIds = [tokenizer.BosId],
        };
        var text = new StringBuilder(tokenizer.Decode(ids));
        foreach (var t in generator.Generate(ids, options)) text.Append(t.Text);
        return text.Append('\n').ToString();
    }

    [Theory]
    [InlineData("Once upon a time", 200, "greedy-once-upon-a-time-200.txt")]
    [InlineData("Lily and Ben", 120, "greedy-lily-and-ben-120.txt")]
    public void Generate_GreedyStories260K_MatchesLlama2cRunC(string prompt, int steps, string referenceFile)
    {
        using var model = ModelLoader.Load(SharedAssets.Stories260K);
        var generator = new TextGenerator(model);
        string expected = File.ReadAllText(SharedAssets.Path("models", "stories260K", referenceFile));
        Assert.Equal(expected, RunLikeLlama2c(generator, prompt, steps));
    }
}
