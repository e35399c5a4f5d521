using System.Diagnostics;
using QuantServe.Engine.Kernels.Cpu;
using QuantServe.Engine.Models;

namespace QuantServe.Engine.Evaluation;

/// <summary>
/// Perplexity exactly as llama.cpp's <c>llama-perplexity -c n_ctx</c> computes it: windows per <see cref="EvaluationWindows"/>,
/// each run as batched forward passes, every scored row's log-softmax taken in parallel on the pool with double sums,
/// <c>ppl = exp(Σ NLL / N)</c>. Per-token log-likelihoods of an arbitrary sequence come from <c>TextGenerator.LogLikelihood</c>.
/// </summary>
public static class Perplexity
{
    /// <summary>Tokenizes <paramref name="text"/> and evaluates <paramref name="model"/> on windows of <paramref name="contextLength"/> tokens
    /// (at most <paramref name="maxChunks"/> when positive); <paramref name="pool"/> defaults to the shared pool.</summary>
    public static PerplexityResult Compute(LoadedModel model, string text, int contextLength, int maxChunks = 0, WorkerPool? pool = null,
        Action<int, double>? onChunk = null, CancellationToken cancellation = default)
        => Compute(model, EvaluationWindows.Create(model, text, contextLength, maxChunks), pool, onChunk, cancellation);

    /// <summary>Evaluates <paramref name="model"/> on <paramref name="windows"/>; <paramref name="onChunk"/> receives each finished
    /// window's index and the running perplexity (llama.cpp's <c>[i]ppl</c> line).</summary>
    public static PerplexityResult Compute(LoadedModel model, EvaluationWindows windows, WorkerPool? pool = null,
        Action<int, double>? onChunk = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(windows);
        pool ??= WorkerPool.Shared;
        long started = Stopwatch.GetTimestamp();
        var scorer = new WindowScorer(model, windows.ContextLength, pool);
        var rows = new RowScores(model.Config.VocabSize, scorer.PieceRows, pool.Threads);
        var targets = new int[scorer.PieceRows];
        int first = windows.First, end = windows.ContextLength - 1;
        double nll = 0, nll2 = 0;
        int count = 0;
        for (int chunk = 0; chunk < windows.Chunks; chunk++)
        {
            cancellation.ThrowIfCancellationRequested();
            scorer.Begin(windows, chunk);
            for (int start = first; start < end; start += scorer.PieceRows)
            {
                int n = Math.Min(scorer.PieceRows, end - start);
                scorer.Piece(start, n);
                scorer.Window.Slice(start + 1, n).CopyTo(targets);
                rows.Score(pool, scorer.Logits, null, targets, n);
                for (int i = 0; i < n; i++)
                {
                    double v = rows.Nll[i];
                    nll += v;
                    nll2 += v * v;
                }
                count += n;
            }
            onChunk?.Invoke(chunk, Math.Exp(nll / count));
        }
        return PerplexityResult.FromSums(nll, nll2, count, windows, Stopwatch.GetElapsedTime(started).TotalSeconds);
    }
}
