using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using QuantServe.Engine.Evaluation;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;

namespace QuantServe.Api.Quantization;

/// <summary>Perplexity of both models and the divergence of the quantized one's next-token distribution from the base.</summary>
public sealed record QualityMetrics(double PerplexityBase, double Perplexity, double KldMean, double KldP99, double Top1Agreement, int TokensScored)
{
    /// <summary>Window length actually used.</summary>
    public int Context { get; init; }
}

/// <summary>Quantization error of one matrix.</summary>
public sealed record TensorError(string Name, int? Layer, string Format, double Mse, double SqnrDb, double CollapseFraction);

/// <summary>Task-eval outcome.</summary>
public sealed record TaskScores(double ScoreBase, double Score, double DegradationPct, string Recommendation, int Items);

/// <summary>
/// Compares a quantized model with its source: perplexity, KL divergence and top-1 agreement over the evaluation text,
/// per-matrix error, and task scores.
/// </summary>
public static class ModelComparison
{
    /// <summary>
    /// Runs both models over <paramref name="text"/> on llama-perplexity's windows (the engine's
    /// <see cref="KlDivergence"/>: windows of <paramref name="context"/> tokens, second half of each scored,
    /// KL(P_base ‖ P_quant) over the full vocabulary). The context shrinks to half the text's tokens when the text is
    /// short (llama.cpp needs two windows' worth); at most ⌈<paramref name="maxTokens"/>/context⌉ windows are scored.
    /// </summary>
    public static QualityMetrics Evaluate(LoadedModel baseModel, LoadedModel quant, string text, int context, int maxTokens,
        Action<double> progress, CancellationToken cancellation)
    {
        var tok = baseModel.Tokenizer;
        int tokens = tok.Encode(text, addBos: tok.AddBosByDefault).Length;
        context = Math.Min(Math.Min(context, tokens / 2), Math.Min(baseModel.Config.ContextLength, quant.Config.ContextLength));
        if (context < 4) throw new InvalidOperationException($"the evaluation text has {tokens} tokens; at least 8 are needed");
        int chunks = (int)Math.Clamp(((long)Math.Max(maxTokens, context) + context - 1) / context, 1, int.MaxValue);
        int total = Math.Min(chunks, tokens / context);
        var r = KlDivergence.Compute(quant, baseModel, text, context, chunks,
            onChunk: (i, _) => progress((i + 1.0) / total), cancellation: cancellation);
        return new QualityMetrics(r.Base.Value, r.Model.Value, r.Mean, r.P99, r.Top1Agreement / 100, r.TokensScored) { Context = context };
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
