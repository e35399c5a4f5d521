using System.Diagnostics;
using QuantServe.Engine.Kernels.Cpu;
using QuantServe.Engine.Models;

namespace QuantServe.Engine.Inference;

/// <summary>Throughput of one model, as llama-bench reports it.</summary>
/// <param name="Threads">Threads the kernels ran on.</param>
/// <param name="PromptTokens">Tokens in the prompt-processing run (pp).</param>
/// <param name="PromptSeconds">Wall time of that run.</param>
/// <param name="GenerateTokens">Tokens in the generation run (tg).</param>
/// <param name="GenerateSeconds">Wall time of that run.</param>
public sealed record BenchmarkResult(int Threads, int PromptTokens, double PromptSeconds, int GenerateTokens, double GenerateSeconds)
{
    /// <summary>Prompt-processing throughput: tokens per second of one batched forward pass over <see cref="PromptTokens"/> tokens.</summary>
    public double PromptTokensPerSecond => PromptTokens / PromptSeconds;

    /// <summary>Generation throughput: tokens per second of one-token forward passes from an empty context.</summary>
    public double GenerateTokensPerSecond => GenerateTokens / GenerateSeconds;

    /// <inheritdoc />
    public override string ToString() =>
        $"pp{PromptTokens}: {PromptTokensPerSecond:F1} tok/s, tg{GenerateTokens}: {GenerateTokensPerSecond:F1} tok/s ({Threads} threads)";
}

/// <summary>
/// llama-bench-style measurements: <c>pp N</c> processes N tokens in one forward pass (batches of the model's maximum
/// size) on an empty cache; <c>tg M</c> decodes M tokens one at a time from an empty cache (the forward pass only — no
/// sampling). Token ids are a fixed pseudo-random sequence, so runs are comparable. Each figure is the best of
/// <c>repetitions</c> runs after a warm-up of at least one run of each that lasts until the JIT has had half a second to
/// move the hot methods to optimised code (a serving process runs that code; tier-0 code of the small helpers can cost
/// a first prompt 2×).
/// </summary>
public static class Benchmark
{
    /// <summary>Measures <paramref name="model"/>; <paramref name="pool"/> defaults to the shared pool (all cores).</summary>
    public static BenchmarkResult Run(LoadedModel model, int promptTokens = 128, int generateTokens = 64, int repetitions = 3, WorkerPool? pool = null)
    {
        var c = model.Config;
        if (promptTokens <= 0 || generateTokens <= 0 || repetitions <= 0)
            throw new ArgumentException("token counts and repetitions must be positive");
        if (promptTokens > c.ContextLength || generateTokens > c.ContextLength)
            throw new ArgumentException($"the model's context holds {c.ContextLength} positions");
        var llama = new LlamaModel(model, Math.Min(promptTokens, 512), pool);
        var rng = new Xoshiro256(0x5EED);
        var tokens = new int[Math.Max(promptTokens, generateTokens)];
        for (int i = 0; i < tokens.Length; i++) tokens[i] = (int)(rng.NextUInt64() % (ulong)c.VocabSize);
        var cache = llama.CreateCache(tokens.Length);
        var logits = new float[c.VocabSize];

        double Prompt()
        {
            cache.Clear();
            long start = Stopwatch.GetTimestamp();
            llama.Forward([new SequenceChunk(cache, tokens.AsMemory(0, promptTokens), 0)], logits);
            return Stopwatch.GetElapsedTime(start).TotalSeconds;
        }

        double Generate()
        {
            cache.Clear();
            long start = Stopwatch.GetTimestamp();
            for (int i = 0; i < generateTokens; i++)
                llama.Forward([new SequenceChunk(cache, tokens.AsMemory(i, 1), i)], logits);
            return Stopwatch.GetElapsedTime(start).TotalSeconds;
        }

        long warm = Stopwatch.GetTimestamp();
        do
        {
            Prompt();
            Generate();
        } while (Stopwatch.GetElapsedTime(warm).TotalSeconds < 0.5);
        double pp = double.MaxValue, tg = double.MaxValue;
        for (int r = 0; r < repetitions; r++)
        {
            pp = Math.Min(pp, Prompt());
            tg = Math.Min(tg, Generate());
        }
        return new BenchmarkResult(llama.Pool.Threads, promptTokens, pp, generateTokens, tg);
    }
}
