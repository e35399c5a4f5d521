using System.Text;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Inference;

public class TextGeneratorTests : IDisposable
{
    private readonly LoadedModel _model = ModelLoader.Load(SharedAssets.Stories260K);
    private readonly TextGenerator _generator;

    public TextGeneratorTests() => _generator = new TextGenerator(_model);

    public void Dispose() => _model.Dispose();

    private static GenerationOptions Greedy(int max) => new() { MaxTokens = max, Sampling = SamplingOptions.Greedy, IgnoreEos = true };

    [Fact]
    public void Generate_MaxTokens_StopsWithLengthOnLastToken()
    {
        var tokens = _generator.Generate("Once upon a time", Greedy(12)).ToList();
        Assert.Equal(12, tokens.Count);
        Assert.All(tokens.Take(11), t => Assert.Null(t.Finish));
        Assert.Equal(FinishReason.Length, tokens[^1].Finish);
    }

    [Fact]
    public void Generate_TextPieces_ConcatenateToDecodedIds()
    {
        var prompt = _model.Tokenizer.Encode("Lily and Ben", addBos: true);
        var tokens = _generator.Generate(prompt, Greedy(40)).ToList();
        string expected = _model.Tokenizer.Decode(tokens.Select(t => t.Token).ToArray(), prompt[^1]);
        Assert.Equal(expected, string.Concat(tokens.Select(t => t.Text)));
    }

    [Fact]
    public void Generate_StopTokenSampled_EndsWithStopAndNoText()
    {
        var free = _generator.Generate("Once upon a time", Greedy(30)).Select(t => t.Token).ToList();
        int index = Enumerable.Range(1, free.Count - 1).First(i => !free.Take(i).Contains(free[i]));
        var stopped = _generator.Generate("Once upon a time", Greedy(30) with { StopTokenIds = [free[index]] }).ToList();
        Assert.Equal(index + 1, stopped.Count);
        Assert.Equal(FinishReason.Stop, stopped[^1].Finish);
        Assert.Equal(free[index], stopped[^1].Token);
        Assert.Equal("", stopped[^1].Text);
        Assert.Equal(free.Take(index), stopped.Take(index).Select(t => t.Token));
    }

    [Fact]
    public void Generate_SameSeed_SameText()
    {
        var options = new GenerationOptions { MaxTokens = 40, Sampling = new SamplingOptions { Temperature = 1f, TopP = 0.95f, Seed = 1234 } };
        string A() => string.Concat(_generator.Generate("Once upon a time", options).Select(t => t.Text));
        Assert.Equal(A(), A());
    }

    [Fact]
    public void Generate_Cancelled_ThrowsOperationCanceled()
    {
        using var cts = new CancellationTokenSource();
        int seen = 0;
        Assert.ThrowsAny<OperationCanceledException>(() =>
        {
            foreach (var _ in _generator.Generate("Once upon a time", Greedy(100), cts.Token))
                if (++seen == 3) cts.Cancel();
        });
        Assert.Equal(3, seen);
    }

    [Fact]
    public async Task GenerateAsync_Greedy_MatchesSynchronous()
    {
        var prompt = _model.Tokenizer.Encode("Lily and Ben", addBos: true);
        var sync = _generator.Generate(prompt, Greedy(20)).Select(t => t.Token).ToList();
        var async = new List<int>();
        await foreach (var t in _generator.GenerateAsync(prompt, Greedy(20))) async.Add(t.Token);
        Assert.Equal(sync, async);
    }

    [Fact]
    public void Generate_ConcurrentGenerations_EachMatchesAlone()
    {
        string Run(string prompt) => string.Concat(_generator.Generate(prompt, Greedy(30)).Select(t => t.Text));
        string a = Run("Once upon a time"), b = Run("Lily and Ben");
        var results = new string[8];
        Parallel.For(0, 8, i => results[i] = Run(i % 2 == 0 ? "Once upon a time" : "Lily and Ben"));
        for (int i = 0; i < 8; i++) Assert.Equal(i % 2 == 0 ? a : b, results[i]);
    }

    [Fact]
    public void Generate_StepsQueuedTogether_RunAsOneBatchAndMatchAlone()
    {
        string[] prompts = ["Once upon a time", "Lily and Ben", "The cat"];
        var alone = prompts.Select(p => string.Concat(new TextGenerator(_model).Generate(p, Greedy(25)).Select(t => t.Text))).ToArray();

        var shared = new TextGenerator(_model);
        var results = new string[prompts.Length];
        Monitor.Enter(shared.Batcher.Gate); // hold the model so every prompt step queues up behind it
        var threads = prompts.Select((p, i) => new Thread(() => results[i] = string.Concat(shared.Generate(p, Greedy(25)).Select(t => t.Text)))).ToArray();
        foreach (var t in threads) t.Start();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (shared.Batcher.Queued < prompts.Length && DateTime.UtcNow < deadline) Thread.Sleep(1);
        Monitor.Exit(shared.Batcher.Gate);
        foreach (var t in threads) t.Join();

        Assert.Equal(alone, results);
        var stats = shared.BatchStatistics;
        Assert.True(stats.WidestBatch >= prompts.Length, $"widest batch {stats.WidestBatch}");
        Assert.True(stats.SequenceSteps > stats.ForwardPasses, $"{stats.SequenceSteps} steps in {stats.ForwardPasses} passes");
    }

    [Fact]
    public void Generate_PromptLongerThanContext_ThrowsArgumentException()
    {
        var prompt = Enumerable.Repeat(5, _model.Config.ContextLength).ToArray();
        Assert.Throws<ArgumentException>(() => _generator.Generate(prompt, Greedy(1)));
    }

    [Fact]
    public void LogLikelihood_GeneratedTokens_MatchesGenerationLogprobs()
    {
        var prompt = _model.Tokenizer.Encode("Once upon a time", addBos: true);
        var options = Greedy(25) with { Sampling = SamplingOptions.Greedy with { Logprobs = true } };
        var generated = _generator.Generate(prompt, options).ToList();
        var all = prompt.Concat(generated.Select(t => t.Token)).ToArray();
        var scored = _generator.LogLikelihood(all, topLogprobs: 2);
        Assert.True(float.IsNaN(scored.TokenLogprobs[0]));
        for (int i = 0; i < generated.Count; i++)
        {
            Assert.Equal(generated[i].Logprob!.Value, scored.TokenLogprobs[prompt.Length + i], 3);
            Assert.Equal(generated[i].Token, scored.TopLogprobs![prompt.Length + i][0].Token); // greedy picks the most likely
        }
        Assert.Equal(scored.TokenLogprobs.Skip(1).Sum(v => (double)v), scored.Sum, 3);
        Assert.All(scored.TokenLogprobs.Skip(1), v => Assert.True(v <= 0));
    }

    [Fact]
    public void LogLikelihood_ProcessedInSmallPieces_MatchesOnePiece()
    {
        var ids = _model.Tokenizer.Encode("Lily and Ben were playing in the park. They saw a big box.", addBos: true);
        var small = new TextGenerator(_model, maxBatchTokens: 4).LogLikelihood(ids);
        var big = _generator.LogLikelihood(ids);
        Assert.Equal(big.Sum, small.Sum, 3);
        Assert.Equal(ids.Length - 1, big.Scored);
    }

    [Fact]
    public void Benchmark_SmallRun_ReportsPositiveThroughput()
    {
        var result = Benchmark.Run(_model, promptTokens: 32, generateTokens: 8, repetitions: 1);
        Assert.Equal(32, result.PromptTokens);
        Assert.Equal(8, result.GenerateTokens);
        Assert.True(result.PromptTokensPerSecond > 0 && double.IsFinite(result.PromptTokensPerSecond));
        Assert.True(result.GenerateTokensPerSecond > 0 && double.IsFinite(result.GenerateTokensPerSecond));
        Assert.Contains("pp32", result.ToString());
    }
}
