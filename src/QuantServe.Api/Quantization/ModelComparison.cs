using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;

namespace QuantServe.Api.Quantization;

/// <summary>Perplexity of both models and the divergence of the quantized one's next-token distribution from the base.</summary>
public sealed record QualityMetrics(double PerplexityBase, double Perplexity, double KldMean, double KldP99, double Top1Agreement, int TokensScored);

/// <summary>Quantization error of one matrix.</summary>
public sealed record TensorError(string Name, int? Layer, string Format, double Mse, double SqnrDb, double CollapseFraction);

/// <summary>Task-eval outcome.</summary>
public sealed record TaskScores(double ScoreBase, double Score, double DegradationPct, string Recommendation, int Items);

/// <summary>
/// Compares a quantized model with its source: perplexity, KL divergence and top-1 agreement over the evaluation text
/// (non-overlapping windows of the context, every position after a window's first scored), per-matrix error, and
/// task scores.
/// </summary>
public static class ModelComparison
{
    /// <summary>Runs both models over <paramref name="text"/>: KL(P_base ‖ P_quant) = Σ_v p_b(v)(log p_b(v) − log p_q(v)) per position.</summary>
    public static QualityMetrics Evaluate(LoadedModel baseModel, LoadedModel quant, string text, int context, int maxTokens,
        Action<double> progress, CancellationToken cancellation)
    {
        int[] tokens = baseModel.Tokenizer.Encode(text, addBos: true, parseSpecial: false).ToArray();
        if (tokens.Length < 2) throw new InvalidOperationException("the evaluation text has fewer than two tokens");
        int vocab = baseModel.Config.VocabSize;
        if (quant.Config.VocabSize != vocab) throw new InvalidOperationException("the models' vocabularies differ");
        context = Math.Clamp(context, 2, Math.Min(baseModel.Config.ContextLength, quant.Config.ContextLength));
        int count = Math.Min(tokens.Length, Math.Max(2, maxTokens));
        var b = new LlamaModel(baseModel, Math.Min(context, 512));
        var q = new LlamaModel(quant, Math.Min(context, 512));
        var lb = new float[context * vocab];
        var lq = new float[context * vocab];
        double nllB = 0, nllQ = 0;
        int agree = 0, scored = 0;
        var klds = new List<double>();
        for (int start = 0; start + 1 < count; start += context)
        {
            cancellation.ThrowIfCancellationRequested();
            int n = Math.Min(context, count - start);
            if (n < 2) break;
            var window = tokens.Skip(start).Take(n).ToArray();
            b.Forward([new SequenceChunk(b.CreateCache(context), window)], lb.AsSpan(0, n * vocab), logitsForAllPositions: true);
            q.Forward([new SequenceChunk(q.CreateCache(context), window)], lq.AsSpan(0, n * vocab), logitsForAllPositions: true);
            for (int i = 0; i + 1 < n; i++)
            {
                var rb = lb.AsSpan(i * vocab, vocab);
                var rq = lq.AsSpan(i * vocab, vocab);
                double zb = LogSumExp(rb, out int ab), zq = LogSumExp(rq, out int aq);
                int next = window[i + 1];
                nllB += zb - rb[next];
                nllQ += zq - rq[next];
                double kl = 0;
                for (int v = 0; v < vocab; v++)
                {
                    double lpb = rb[v] - zb;
                    kl += Math.Exp(lpb) * (lpb - (rq[v] - zq));
                }
                klds.Add(Math.Max(0, kl));
                if (ab == aq) agree++;
                scored++;
            }
            progress((double)Math.Min(count, start + n) / count);
        }
        klds.Sort();
        double p99 = klds[Math.Min(klds.Count - 1, (int)Math.Ceiling(0.99 * klds.Count) - 1)];
        return new QualityMetrics(Math.Exp(nllB / scored), Math.Exp(nllQ / scored), klds.Average(), p99, (double)agree / scored, scored);
    }

    private static double LogSumExp(ReadOnlySpan<float> x, out int argmax)
    {
        float max = float.NegativeInfinity;
        argmax = 0;
        for (int i = 0; i < x.Length; i++) if (x[i] > max) { max = x[i]; argmax = i; }
        double s = 0;
        for (int i = 0; i < x.Length; i++) s += Math.Exp(x[i] - max);
        return max + Math.Log(s);
    }

    /// <summary>Elements per matrix over which distinct values are counted (the first rows up to this many).</summary>
    public const int CollapseSample = 1 << 18;

    /// <summary>
    /// Per matrix: MSE = Σ(w − q)²/n, SQNR = 10·log10(Σw² / Σ(w − q)²) dB, and collapse = 1 − distinct(q)/distinct(w)
    /// over the first <see cref="CollapseSample"/> elements (the fraction of originally distinct values merged).
    /// </summary>
    public static IReadOnlyList<TensorError> LayerErrors(LoadedModel baseModel, LoadedModel quant, CancellationToken cancellation)
    {
        var quantByName = quant.Weights.Matrices.GroupBy(m => m.Name).ToDictionary(g => g.Key, g => g.First());
        var list = new List<TensorError>();
        foreach (var w in baseModel.Weights.Matrices.DistinctBy(m => m.Name))
        {
            cancellation.ThrowIfCancellationRequested();
            if (!quantByName.TryGetValue(w.Name, out var qw) || qw.Rows != w.Rows || qw.Cols != w.Cols) continue;
            var a = new float[w.Cols];
            var c = new float[w.Cols];
            double err = 0, sig = 0;
            var distinctW = new HashSet<float>();
            var distinctQ = new HashSet<float>();
            long sampled = 0;
            for (int r = 0; r < w.Rows; r++)
            {
                w.Format.DequantizeRow(w, r, a);
                qw.Format.DequantizeRow(qw, r, c);
                for (int i = 0; i < a.Length; i++)
                {
                    double d = a[i] - c[i];
                    err += d * d;
                    sig += (double)a[i] * a[i];
                }
                if (sampled < CollapseSample)
                {
                    foreach (var v in a) distinctW.Add(v);
                    foreach (var v in c) distinctQ.Add(v);
                    sampled += a.Length;
                }
            }
            long n = (long)w.Rows * w.Cols;
            double sqnr = err == 0 ? double.PositiveInfinity : 10 * Math.Log10(sig / err);
            double collapse = distinctW.Count == 0 ? 0 : Math.Max(0, 1 - (double)distinctQ.Count / distinctW.Count);
            list.Add(new TensorError(w.Name, LayerOf(w.Name), qw.Format.Name, err / n, double.IsInfinity(sqnr) ? 999 : sqnr, collapse));
        }
        return list;
    }

    private static int? LayerOf(string name)
    {
        var m = Regex.Match(name, @"(?:blk|layers)\.(\d+)\.");
        return m.Success ? int.Parse(m.Groups[1].Value) : null;
    }

    /// <summary>Greedy answers of both models to each item; score = fraction passing; degradation = (base − quant)/base × 100
    /// (0 when the base scores 0); "deploy" when degradation ≤ <paramref name="threshold"/>, else "investigate".</summary>
    public static TaskScores TaskEval(LoadedModel baseModel, LoadedModel quant, IReadOnlyList<TaskEvalItem> items, double threshold,
        CancellationToken cancellation)
    {
        double sb = Score(baseModel, items, cancellation), sq = Score(quant, items, cancellation);
        double degradation = sb <= 0 ? 0 : Math.Max(0, (sb - sq) / sb * 100);
        return new TaskScores(sb, sq, degradation, degradation <= threshold ? "deploy" : "investigate", items.Count);
    }

    private static double Score(LoadedModel model, IReadOnlyList<TaskEvalItem> items, CancellationToken cancellation)
    {
        if (items.Count == 0) return 0;
        var gen = new TextGenerator(model);
        int pass = 0;
        foreach (var item in items)
        {
            var sb = new StringBuilder();
            var options = new GenerationOptions { MaxTokens = Math.Clamp(item.MaxTokens ?? 16, 1, 512), Sampling = SamplingOptions.Greedy };
            foreach (var t in gen.Generate(item.Prompt, options, cancellation)) sb.Append(t.Text);
            if (Passes(sb.ToString(), item)) pass++;
        }
        return (double)pass / items.Count;
    }

    /// <summary>Whether <paramref name="answer"/> satisfies the item's check.</summary>
    public static bool Passes(string answer, TaskEvalItem item)
    {
        string expected = item.Expected ?? "";
        switch (item.Match.ToLowerInvariant())
        {
            case "exact": return answer.Trim() == expected.Trim();
            case "regex": return Regex.IsMatch(answer, expected, RegexOptions.None, TimeSpan.FromSeconds(1));
            case "json":
                try { using var _ = JsonDocument.Parse(answer.Trim()); return true; }
                catch (JsonException) { return false; }
            default: return answer.Contains(expected, StringComparison.Ordinal);
        }
    }
}
