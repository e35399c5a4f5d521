using System.Diagnostics;
using QuantServe.Engine.Kernels.Cpu;
using QuantServe.Engine.Models;

namespace QuantServe.Engine.Evaluation;

/// <summary>
/// KL divergence, top-1 agreement and both perplexities of a model against a base model on llama-perplexity's windows.
/// Both models run window by window in lockstep and each scored piece's rows are compared while still in memory, so
/// nothing is stored across windows but one float per scored token (for the percentiles). llama.cpp instead writes the
/// base log-probabilities to a file as 16-bit values and skips base probabilities below e^−16; this computes the exact
/// full-vocabulary sum, so tiny KL values can differ from llama.cpp's in the last digits.
/// </summary>
public static class KlDivergence
{
    /// <summary>Tokenizes <paramref name="text"/> with the base model's tokenizer and compares <paramref name="model"/> with
    /// <paramref name="baseModel"/> on windows of <paramref name="contextLength"/> tokens.</summary>
    public static KlDivergenceResult Compute(LoadedModel model, LoadedModel baseModel, string text, int contextLength, int maxChunks = 0,
        WorkerPool? pool = null, Action<int, double>? onChunk = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(baseModel);
        return Compute(model, baseModel, EvaluationWindows.Create(baseModel, text, contextLength, maxChunks), pool, onChunk, cancellation);
    }

    /// <summary>Compares <paramref name="model"/> with <paramref name="baseModel"/> on <paramref name="windows"/>; <paramref name="onChunk"/>
    /// receives each finished window's index and the running mean KL divergence.</summary>
    /// <exception cref="ArgumentException">The vocabularies differ in size or the context exceeds either model's.</exception>
    public static KlDivergenceResult Compute(LoadedModel model, LoadedModel baseModel, EvaluationWindows windows, WorkerPool? pool = null,
        Action<int, double>? onChunk = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(baseModel);
        ArgumentNullException.ThrowIfNull(windows);
        int vocab = model.Config.VocabSize;
        if (baseModel.Config.VocabSize != vocab)
            throw new ArgumentException($"vocabularies differ: the model has {vocab} tokens, the base model {baseModel.Config.VocabSize}");
        if (windows.ContextLength > model.Config.ContextLength)
            throw new ArgumentException($"context of {windows.ContextLength} tokens exceeds the model's context length of {model.Config.ContextLength}");
        pool ??= WorkerPool.Shared;
        long started = Stopwatch.GetTimestamp();
        var scorer = new WindowScorer(model, windows.ContextLength, pool);
        var baseScorer = new WindowScorer(baseModel, windows.ContextLength, pool);
        var rows = new RowScores(vocab, scorer.PieceRows, pool.Threads);
        var targets = new int[scorer.PieceRows];
        var kls = new float[windows.TokensScored];
        int first = windows.First, end = windows.ContextLength - 1;
        double nll = 0, nll2 = 0, baseNll = 0, baseNll2 = 0, kl = 0, kl2 = 0;
        int count = 0, sameTop = 0;
        for (int chunk = 0; chunk < windows.Chunks; chunk++)
        {
            cancellation.ThrowIfCancellationRequested();
            scorer.Begin(windows, chunk);
            baseScorer.Begin(windows, chunk);
            for (int start = first; start < end; start += scorer.PieceRows)
            {
                int n = Math.Min(scorer.PieceRows, end - start);
                scorer.Piece(start, n);
                baseScorer.Piece(start, n);
                scorer.Window.Slice(start + 1, n).CopyTo(targets);
                rows.Score(pool, scorer.Logits, baseScorer.Logits, targets, n);
                for (int i = 0; i < n; i++)
                {
                    double v = rows.Nll[i], b = rows.BaseNll[i], d = rows.Kl[i];
                    nll += v; nll2 += v * v;
                    baseNll += b; baseNll2 += b * b;
                    kl += d; kl2 += d * d;
                    kls[count + i] = (float)d;
                    if (rows.Top[i] == rows.BaseTop[i]) sameTop++;
                }
                count += n;
            }
            onChunk?.Invoke(chunk, kl / count);
        }

        double seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        double mean = kl / count;
        double variance = kl2 / count - mean * mean;
        double stderr = variance > 0 && count > 10 ? Math.Sqrt(variance / (count - 1)) : 0;
        double p = (double)sameTop / count;
        double pStderr = count > 1 ? Math.Sqrt(p * (1 - p) / (count - 1)) : 0;
        Array.Sort(kls);
        return new KlDivergenceResult(
            PerplexityResult.FromSums(nll, nll2, count, windows, seconds),
            PerplexityResult.FromSums(baseNll, baseNll2, count, windows, seconds),
            mean, stderr, KlDivergenceResult.Percentile(kls, 0.5), KlDivergenceResult.Percentile(kls, 0.99), kls[^1],
            100 * p, 100 * pStderr, count, seconds);
    }
}
