using System.Diagnostics;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;
using QuantServe.Engine.Quantization.Calibration;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Quantization.Methods;

/// <summary>Progress of <see cref="AwqModelQuantizer.Quantize"/>: fraction done and the layer at work.</summary>
public sealed record AwqProgress(double Fraction, int Layer, int Layers, string Stage);

/// <summary>The α chosen for one scaled group and its output error at that α and at α = 0 (round-to-nearest).</summary>
public sealed record AwqGroupChoice(double Alpha, double Error, double RtnError);

/// <summary>
/// AWQ results of a whole model: the quantized matrices by GGUF tensor name (<c>blk.N.attn_q.weight</c> …; empty with
/// <see cref="AwqOptions.ScaleOnly"/>), the α chosen per group (<c>blk.N.attn_qkv</c>, <c>blk.N.attn_output</c>,
/// <c>blk.N.ffn_gate_up</c>, <c>blk.N.ffn_down</c>) and the time taken.
/// </summary>
public sealed record AwqModelResult(IReadOnlyDictionary<string, AwqMatrix> Matrices, IReadOnlyDictionary<string, AwqGroupChoice> Choices,
    AwqOptions Options, double Seconds);

/// <summary>
/// Activation-aware weight quantization (AWQ, Lin et al. 2023, as AutoAWQ does it) over every linear layer of the
/// transformer blocks; embedding and output head keep their precision. Layers go in order; for layer l the calibration
/// windows run through the model, whose earlier layers already hold their quantized weights, and four groups of layer l are
/// scaled, each by per-input-channel scales s = mean|x|^α (normalized, see <see cref="AwqSearch.Scales"/>) with α the best
/// of the grid for the group's output error ‖(Q(W·diag(s))·diag(1/s) − W)·X‖²:
/// <list type="bullet">
/// <item>q, k, v; 1/s folded into the attention RMSNorm weight;</item>
/// <item>the output projection; 1/s folded into the rows of v (and its bias). With grouped-query attention a v row feeds
/// every query head of its group, so the scales are tied across those heads (computed from the mean |x| averaged over them);
/// AutoAWQ instead skips this group when v and o differ in shape;</item>
/// <item>gate and up; 1/s folded into the feed-forward RMSNorm weight;</item>
/// <item>down; 1/s folded into the rows of up (SwiGLU is linear in up).</item>
/// </list>
/// Then (optionally) AutoAWQ's clipping search on every matrix but q and k, and the grid quantization
/// (<see cref="AwqGrid"/>). The layer's matrices in <see cref="LoadedModel.Weights"/> are replaced by F32 matrices of the
/// dequantized weights and its norms by the folded ones, so on return the model computes what the AWQ checkpoint does.
/// </summary>
public static class AwqModelQuantizer
{
    private static readonly string[] Names = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"];

    /// <summary>Quantizes <paramref name="model"/> in place (see the class summary).</summary>
    public static AwqModelResult Quantize(LoadedModel model, CalibrationSet set, AwqOptions options,
        IProgress<AwqProgress>? progress = null, CancellationToken cancellation = default)
    {
        options.Validate();
        var sw = Stopwatch.StartNew();
        var c = model.Config;
        var matrices = new Dictionary<string, AwqMatrix>(StringComparer.Ordinal);
        var choices = new Dictionary<string, AwqGroupChoice>(StringComparer.Ordinal);
        int stride = Stride(set, options);
        // Layer by layer, as GPTQ's pipeline: every window's residual stream is kept (N × L × dim floats) and advanced one
        // layer at a time through the already-quantized layers, so calibrating layer l costs one layer's forward pass
        // instead of a whole-model pass from the embedding (O(layers) layer passes in all, not O(layers²)).
        var llama = new LlamaModel(model, set.SequenceLength);
        var cache = llama.CreateCache(set.SequenceLength);
        var hidden = new float[set.Samples][];
        for (int i = 0; i < set.Samples; i++)
        {
            hidden[i] = new float[set.SequenceLength * c.Dim];
            llama.Embed(set.Windows[i], hidden[i]);
        }
        var scratch = new float[set.SequenceLength * c.Dim];
        for (int l = 0; l < c.Layers; l++)
        {
            int layer = l;
            var capture = new AwqCapture(l, c, stride);
            llama.Observer = capture;
            for (int i = 0; i < set.Samples; i++)
            {
                cancellation.ThrowIfCancellationRequested();
                hidden[i].CopyTo(scratch, 0);
                cache.Clear();
                llama.ForwardLayer(l, cache, scratch, set.SequenceLength);
                progress?.Report(new AwqProgress((layer + 0.4 * (i + 1) / set.Samples) / c.Layers, layer, c.Layers, "calibrate"));
            }
            llama.Observer = null;
            QuantizeCaptured(model, capture, l, options, matrices, choices, progress, cancellation);
            // The next layer sees this layer's quantized output.
            for (int i = 0; i < set.Samples; i++)
            {
                cancellation.ThrowIfCancellationRequested();
                cache.Clear();
                llama.ForwardLayer(l, cache, hidden[i], set.SequenceLength);
            }
        }
        return new AwqModelResult(matrices, choices, options, sw.Elapsed.TotalSeconds);
    }

    private static int Stride(CalibrationSet set, AwqOptions options) => (int)Math.Max(1, (set.TokenCount + options.MaxTokens - 1) / options.MaxTokens);

    /// <summary>
    /// AWQ of layer <paramref name="l"/> alone, in place (the step <see cref="Quantize"/> takes per layer); its matrices
    /// and choices are added to the dictionaries.
    /// </summary>
    public static void QuantizeLayer(LoadedModel model, CalibrationSet set, int l, AwqOptions options,
        IDictionary<string, AwqMatrix> matrices, IDictionary<string, AwqGroupChoice> choices,
        IProgress<AwqProgress>? progress = null, CancellationToken cancellation = default)
    {
        options.Validate();
        var c = model.Config;
        if (l < 0 || l >= c.Layers) throw new ArgumentOutOfRangeException(nameof(l), l, $"the model has {c.Layers} layers");
        int layer = l;
        var capture = new AwqCapture(l, c, Stride(set, options));
        CalibrationRunner.Run(model, set, capture,
            new Progress(f => progress?.Report(new AwqProgress((layer + 0.4 * f) / c.Layers, layer, c.Layers, "calibrate"))), cancellation);
        QuantizeCaptured(model, capture, l, options, matrices, choices, progress, cancellation);
    }

    /// <summary>The search, fold and quantization of layer <paramref name="l"/> from its captured input statistics.</summary>
    private static void QuantizeCaptured(LoadedModel model, AwqCapture capture, int l, AwqOptions options,
        IDictionary<string, AwqMatrix> matrices, IDictionary<string, AwqGroupChoice> choices,
        IProgress<AwqProgress>? progress, CancellationToken cancellation)
    {
        var c = model.Config;
        int layer = l;
        {
            var L = model.Weights.Layers[l];
            WeightMatrix[] src = [L.Wq, L.Wk, L.Wv, L.Wo, L.Gate, L.Up, L.Down];
            var dense = src.Select(Dense).ToArray();
            int dim = c.Dim, qDim = c.QDim, kvDim = c.KvDim, hidden = c.HiddenDim;

            void Report(string stage, double f) => progress?.Report(new AwqProgress((layer + 0.4 + 0.6 * f) / c.Layers, layer, c.Layers, stage));

            // Scale searches, all on the layer's original weights (as AutoAWQ).
            var h = new float[4][];
            h[0] = capture.Moment(0);
            var qkv = Concat(dense[0], dense[1], dense[2]);
            var sQkv = Search($"blk.{l}.attn_qkv", qkv, qDim + 2 * kvDim, dim, h[0], capture.Mean(0), options, choices);
            Report("scale qkv", 0.2);
            cancellation.ThrowIfCancellationRequested();

            h[1] = capture.Moment(1);
            var tied = TieAcrossQueryHeads(capture.Mean(1), c);
            var sO = Search($"blk.{l}.attn_output", dense[3], dim, qDim, h[1], tied, options, choices);
            Report("scale output", 0.35);
            cancellation.ThrowIfCancellationRequested();

            h[2] = capture.Moment(2);
            var gateUp = Concat(dense[4], dense[5]);
            var sGu = Search($"blk.{l}.ffn_gate_up", gateUp, 2 * hidden, dim, h[2], capture.Mean(2), options, choices);
            Report("scale gate/up", 0.6);
            cancellation.ThrowIfCancellationRequested();

            h[3] = capture.Moment(3);
            var sDown = Search($"blk.{l}.ffn_down", dense[6], dim, hidden, h[3], capture.Mean(3), options, choices);
            Report("scale down", 0.75);
            cancellation.ThrowIfCancellationRequested();

            // Fold: columns of each group times s, the producer of its input divided by s.
            var attnNorm = Divide(L.AttnNorm, sQkv);
            var ffnNorm = Divide(L.FfnNorm, sGu);
            ScaleColumns(dense[0], sQkv); ScaleColumns(dense[1], sQkv); ScaleColumns(dense[2], sQkv);
            var sV = new float[kvDim];
            int rep = c.Heads / c.KvHeads;
            for (int j = 0; j < kvDim; j++) sV[j] = sO[(j / c.HeadDim) * rep * c.HeadDim + j % c.HeadDim];
            DivideRows(dense[2], sV);
            var bv = L.Bv is null ? null : Divide(L.Bv, sV);
            ScaleColumns(dense[3], sO);
            ScaleColumns(dense[4], sGu); ScaleColumns(dense[5], sGu);
            DivideRows(dense[5], sDown);
            ScaleColumns(dense[6], sDown);

            var replaced = new WeightMatrix[7];
            if (options.ScaleOnly)
                for (int j = 0; j < 7; j++) replaced[j] = DenseMatrix.F32(src[j].Name, src[j].Rows, src[j].Cols, dense[j]);
            else
            {
                // The inputs the scaled weights now see are x / s: their second moment is H / (s sᵀ).
                float[][] sIn = [sQkv, sQkv, sQkv, sO, sGu, sGu, sDown];
                int[] hIn = [0, 0, 0, 1, 2, 2, 3];
                var scaledH = new float[4][];
                for (int j = 0; j < 7; j++)
                {
                    cancellation.ThrowIfCancellationRequested();
                    var m = src[j];
                    float[]? clips = null;
                    if (options.Clip && j >= 2)
                    {
                        scaledH[hIn[j]] ??= ScaleMoment(h[hIn[j]], sIn[j]);
                        clips = AwqSearch.SearchClip(dense[j], m.Rows, m.Cols, scaledH[hIn[j]], options);
                    }
                    var q = AwqSearch.Quantize(dense[j], m.Rows, m.Cols, clips, options);
                    matrices[$"blk.{l}.{Names[j]}.weight"] = q;
                    var deq = new float[m.Rows * m.Cols];
                    for (int r = 0; r < m.Rows; r++) q.DequantizeRow(r, deq.AsSpan(r * m.Cols, m.Cols));
                    replaced[j] = DenseMatrix.F32(m.Name, m.Rows, m.Cols, deq);
                    Report(Names[j], 0.75 + 0.25 * (j + 1) / 7);
                }
            }
            model.Weights.Layers[l] = new LayerWeights
            {
                AttnNorm = attnNorm, FfnNorm = ffnNorm, Bq = L.Bq, Bk = L.Bk, Bv = bv,
                Wq = replaced[0], Wk = replaced[1], Wv = replaced[2], Wo = replaced[3],
                Gate = replaced[4], Up = replaced[5], Down = replaced[6],
            };
            progress?.Report(new AwqProgress((l + 1.0) / c.Layers, l, c.Layers, "done"));
        }
    }

    /// <summary>
    /// Round-to-nearest on the AWQ grid (no scaling, no clipping), in place: the baseline AWQ is measured against. Returns
    /// the quantized matrices.
    /// </summary>
    public static AwqModelResult RoundToNearest(LoadedModel model, AwqOptions options)
    {
        options.Validate();
        var sw = Stopwatch.StartNew();
        var matrices = new Dictionary<string, AwqMatrix>(StringComparer.Ordinal);
        for (int l = 0; l < model.Config.Layers; l++)
        {
            var L = model.Weights.Layers[l];
            WeightMatrix[] src = [L.Wq, L.Wk, L.Wv, L.Wo, L.Gate, L.Up, L.Down];
            var replaced = new WeightMatrix[7];
            for (int j = 0; j < 7; j++)
            {
                var m = src[j];
                var q = AwqSearch.Quantize(Dense(m), m.Rows, m.Cols, null, options);
                matrices[$"blk.{l}.{Names[j]}.weight"] = q;
                var deq = new float[m.Rows * m.Cols];
                for (int r = 0; r < m.Rows; r++) q.DequantizeRow(r, deq.AsSpan(r * m.Cols, m.Cols));
                replaced[j] = DenseMatrix.F32(m.Name, m.Rows, m.Cols, deq);
            }
            model.Weights.Layers[l] = new LayerWeights
            {
                AttnNorm = L.AttnNorm, FfnNorm = L.FfnNorm, Bq = L.Bq, Bk = L.Bk, Bv = L.Bv,
                Wq = replaced[0], Wk = replaced[1], Wv = replaced[2], Wo = replaced[3],
                Gate = replaced[4], Up = replaced[5], Down = replaced[6],
            };
        }
        return new AwqModelResult(matrices, new Dictionary<string, AwqGroupChoice>(), options, sw.Elapsed.TotalSeconds);
    }

    /// <summary>
    /// Replaces the layer matrices of a model quantized by <see cref="Quantize"/> with <paramref name="result"/>'s matrices
    /// in QuantServe's <c>intB-gG-asym</c> format: the same weights on the integer kernels, as a saved AWQ checkpoint loads.
    /// </summary>
    public static void UseIntegerKernels(LoadedModel model, AwqModelResult result)
    {
        for (int l = 0; l < model.Config.Layers; l++)
        {
            var L = model.Weights.Layers[l];
            WeightMatrix M(int j, WeightMatrix old) => result.Matrices.TryGetValue($"blk.{l}.{Names[j]}.weight", out var m)
                ? m.ToWeightMatrix(old.Name) : throw new ArgumentException($"the AWQ result has no blk.{l}.{Names[j]}.weight");
            model.Weights.Layers[l] = new LayerWeights
            {
                AttnNorm = L.AttnNorm, FfnNorm = L.FfnNorm, Bq = L.Bq, Bk = L.Bk, Bv = L.Bv,
                Wq = M(0, L.Wq), Wk = M(1, L.Wk), Wv = M(2, L.Wv), Wo = M(3, L.Wo),
                Gate = M(4, L.Gate), Up = M(5, L.Up), Down = M(6, L.Down),
            };
        }
    }

    /// <summary>The GGUF-style short names of a layer's seven matrices, in <see cref="LayerWeights.Matrices"/> order.</summary>
    public static IReadOnlyList<string> MatrixNames => Names;

    private static float[] Search(string name, float[] w, int rows, int cols, float[] h, float[] xMean, AwqOptions o,
        IDictionary<string, AwqGroupChoice> choices)
    {
        var (alpha, s, e, rtn) = AwqSearch.SearchScales(w, rows, cols, h, xMean, o);
        choices[name] = new AwqGroupChoice(alpha, e, rtn);
        return s;
    }

    /// <summary>Mean |x| of the attention output with each channel replaced by its average over the query heads that
    /// share one key/value head, so one scale per v row serves them all.</summary>
    internal static float[] TieAcrossQueryHeads(float[] mean, ModelConfig c)
    {
        int rep = c.Heads / c.KvHeads, hd = c.HeadDim;
        var tied = new float[mean.Length];
        for (int kv = 0; kv < c.KvHeads; kv++)
            for (int d = 0; d < hd; d++)
            {
                double sum = 0;
                for (int i = 0; i < rep; i++) sum += mean[(kv * rep + i) * hd + d];
                for (int i = 0; i < rep; i++) tied[(kv * rep + i) * hd + d] = (float)(sum / rep);
            }
        return tied;
    }

    private static float[] Dense(WeightMatrix w)
    {
        var d = new float[w.Rows * w.Cols];
        for (int r = 0; r < w.Rows; r++) w.DequantizeRow(r, d.AsSpan(r * w.Cols, w.Cols));
        return d;
    }

    private static float[] Concat(params float[][] parts)
    {
        var all = new float[parts.Sum(p => p.Length)];
        int o = 0;
        foreach (var p in parts) { p.CopyTo(all, o); o += p.Length; }
        return all;
    }

    private static float[] Divide(float[] v, float[] s)
    {
        var r = new float[v.Length];
        for (int i = 0; i < v.Length; i++) r[i] = v[i] / s[i];
        return r;
    }

    private static void ScaleColumns(float[] w, float[] s)
    {
        int cols = s.Length;
        for (int i = 0; i < w.Length; i++) w[i] *= s[i % cols];
    }

    private static void DivideRows(float[] w, float[] s)
    {
        int cols = w.Length / s.Length;
        for (int r = 0; r < s.Length; r++)
            for (int j = 0; j < cols; j++) w[r * cols + j] /= s[r];
    }

    private static float[] ScaleMoment(float[] h, float[] s)
    {
        int n = s.Length;
        var r = new float[h.Length];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) r[i * n + j] = h[i * n + j] / (s[i] * s[j]);
        return r;
    }

    private sealed class Progress(Action<double> report) : IProgress<double>
    {
        public void Report(double value) => report(value);
    }
}
