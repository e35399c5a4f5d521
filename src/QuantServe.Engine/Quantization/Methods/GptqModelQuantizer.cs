using System.Diagnostics;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;
using QuantServe.Engine.Quantization.Calibration;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Quantization.Methods;

/// <summary>Progress of <see cref="GptqModelQuantizer"/>: fraction done and the layer at work.</summary>
public sealed record GptqProgress(double Fraction, int Layer, int Layers, string Stage);

/// <summary>GPTQ results of a whole model by GGUF tensor name (<c>blk.N.attn_q.weight</c> …), and the time taken.</summary>
public sealed record GptqModelResult(IReadOnlyDictionary<string, GptqResult> Matrices, double Seconds);

/// <summary>
/// GPTQ over every linear layer of the transformer blocks (the embedding and output head keep their precision), layer by
/// layer: every calibration window's residual stream is kept (N × L × dim floats) and advanced one block at a time with
/// <see cref="LlamaModel.ForwardLayer"/>, so each layer is calibrated on the outputs of the already-quantized layers before
/// it and only one input Hessian is held at a time. Inside a block the order is true-sequential: q/k/v from the normed
/// input, then o from the attention of the quantized q/k/v, gate/up from the residual after the quantized o, down from
/// SiLU(gate)·up of the quantized gate/up; each capture pass stops right after the input it needs. Quantized matrices
/// replace the originals in <see cref="LoadedModel.Weights"/> as F32 matrices of their dequantized weights, so on return
/// the model computes exactly what the GPTQ checkpoint holds (useful for evaluation).
/// </summary>
public static class GptqModelQuantizer
{
    /// <summary>Quantizes <paramref name="model"/> in place (see the class summary).</summary>
    public static GptqModelResult Quantize(LoadedModel model, CalibrationSet set, GptqOptions options,
        IProgress<GptqProgress>? progress = null, CancellationToken cancellation = default)
        => Run(model, set, options, progress, cancellation, null);

    /// <summary>
    /// <see cref="Quantize(LoadedModel, CalibrationSet, GptqOptions, IProgress{GptqProgress}?, CancellationToken)"/> with the
    /// Hessian accumulation and the column sweeps on <paramref name="accelerator"/> (null: the CPU). The calibration forward
    /// passes and each matrix's Cholesky factor stay on the CPU.
    /// </summary>
    public static GptqModelResult Quantize(LoadedModel model, CalibrationSet set, GptqOptions options, IGptqAccelerator? accelerator,
        IProgress<GptqProgress>? progress = null, CancellationToken cancellation = default)
        => Run(model, set, options, progress, cancellation, accelerator);

    /// <summary>
    /// Round-to-nearest on the same grid (per-row, per-group min/max, same bits and symmetry), in place: GPTQ with an
    /// identity Hessian, whose inverse factor is diagonal so no error is carried to other columns. The baseline GPTQ is
    /// measured against.
    /// </summary>
    public static GptqModelResult RoundToNearest(LoadedModel model, GptqOptions options, CancellationToken cancellation = default)
        => Run(model, null, options with { ActOrder = false }, null, cancellation, null);

    private static double[] Identity(int n)
    {
        var h = new double[n * n];
        for (int i = 0; i < n; i++) h[i * n + i] = 1;
        return h;
    }

    private static readonly (string Name, LinearInput Input)[] Jobs =
    [
        ("attn_q", LinearInput.AttentionQkv), ("attn_k", LinearInput.AttentionQkv), ("attn_v", LinearInput.AttentionQkv),
        ("attn_output", LinearInput.AttentionOutput), ("ffn_gate", LinearInput.FfnGateUp), ("ffn_up", LinearInput.FfnGateUp),
        ("ffn_down", LinearInput.FfnDown),
    ];

    private static GptqModelResult Run(LoadedModel model, CalibrationSet? set, GptqOptions options,
        IProgress<GptqProgress>? progress, CancellationToken cancellation, IGptqAccelerator? accelerator)
    {
        options.Validate();
        var sw = Stopwatch.StartNew();
        var c = model.Config;
        var results = new Dictionary<string, GptqResult>(StringComparer.Ordinal);
        // Layer by layer: every window's residual stream is kept (N × L × dim floats) and advanced one layer at a time.
        // True-sequential inside a layer: each input's Hessian is captured with everything before it already quantized
        // (o sees the quantized q/k/v, gate/up the quantized attention, down the quantized gate/up); a capture pass stops
        // right after the input it needs, and a last pass runs the fully quantized layer to produce the next layer's input.
        LinearInput[] stages = [LinearInput.AttentionQkv, LinearInput.AttentionOutput, LinearInput.FfnGateUp, LinearInput.FfnDown];
        int totalSteps = c.Layers * (stages.Length + 1), step = 0;
        LlamaModel? llama = null;
        KvCache? cache = null;
        float[][] hidden = [];
        if (set is not null)
        {
            llama = new LlamaModel(model, set.SequenceLength);
            cache = llama.CreateCache(set.SequenceLength);
            hidden = new float[set.Samples][];
            for (int i = 0; i < set.Samples; i++)
            {
                hidden[i] = new float[set.SequenceLength * c.Dim];
                llama.Embed(set.Windows[i], hidden[i]);
            }
        }
        void Pass(int layer, IActivationObserver? observer, double at)
        {
            llama!.Observer = observer;
            for (int i = 0; i < hidden.Length; i++)
            {
                cancellation.ThrowIfCancellationRequested();
                cache!.Clear();
                try { llama.ForwardLayer(layer, cache, hidden[i], set!.SequenceLength); }
                catch (StageCaptured) { }
                if ((i & 7) == 7) progress?.Report(new GptqProgress((at + (i + 1.0) / hidden.Length * 0.5) / totalSteps, layer, c.Layers, "calibrate"));
            }
            llama.Observer = null;
        }
        for (int l = 0; l < c.Layers; l++)
        {
            foreach (var stage in stages)
            {
                int width = stage switch { LinearInput.AttentionOutput => c.QDim, LinearInput.FfnDown => c.HiddenDim, _ => c.Dim };
                double[] h;
                if (set is null) h = Identity(width);
                else
                {
                    using var hessian = accelerator?.CreateHessian(width) ?? new GptqHessian(width);
                    var observer = new StageHessian(l, stage, hessian);
                    Pass(l, observer, step);
                    h = hessian.ToMatrix();
                }
                var L = model.Weights.Layers[l];
                var matrices = new Dictionary<string, WeightMatrix>
                {
                    ["attn_q"] = L.Wq, ["attn_k"] = L.Wk, ["attn_v"] = L.Wv, ["attn_output"] = L.Wo,
                    ["ffn_gate"] = L.Gate, ["ffn_up"] = L.Up, ["ffn_down"] = L.Down,
                };
                foreach (var (name, input) in Jobs)
                {
                    if (input != stage) continue;
                    cancellation.ThrowIfCancellationRequested();
                    var w = matrices[name];
                    var dense = new float[w.Rows * w.Cols];
                    for (int r = 0; r < w.Rows; r++) w.DequantizeRow(r, dense.AsSpan(r * w.Cols, w.Cols));
                    var result = GptqQuantizer.Quantize(dense, w.Rows, w.Cols, h, options, accelerator);
                    results[$"blk.{l}.{name}.weight"] = result;
                    matrices[name] = F32Matrix(w.Name, result);
                }
                model.Weights.Layers[l] = new LayerWeights
                {
                    AttnNorm = L.AttnNorm, FfnNorm = L.FfnNorm, Bq = L.Bq, Bk = L.Bk, Bv = L.Bv,
                    Wq = matrices["attn_q"], Wk = matrices["attn_k"], Wv = matrices["attn_v"], Wo = matrices["attn_output"],
                    Gate = matrices["ffn_gate"], Up = matrices["ffn_up"], Down = matrices["ffn_down"],
                };
                step++;
                progress?.Report(new GptqProgress((double)step / totalSteps, l, c.Layers, stage.ToString()));
            }
            if (set is not null) Pass(l, null, step);
            step++;
            progress?.Report(new GptqProgress((double)step / totalSteps, l, c.Layers, "forward"));
        }
        return new GptqModelResult(results, sw.Elapsed.TotalSeconds);
    }

    // The pinned array travels as the matrix's state, which keeps it alive as long as the matrix.
    private static unsafe WeightMatrix F32Matrix(string name, GptqResult q)
    {
        var data = GC.AllocateArray<float>(q.Rows * q.Cols, pinned: true);
        q.Dequantize().CopyTo(data, 0);
        var format = TensorFormats.ForGgml(GgmlType.F32) ?? throw new InvalidOperationException("F32 format is not registered");
        byte* p = (byte*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref data[0]);
        return new WeightMatrix(name, format, q.Rows, q.Cols, p, q.Cols * sizeof(float), data);
    }

    private sealed class Progress(Action<double> report) : IProgress<double>
    {
        public void Report(double value) => report(value);
    }

    private sealed class StageCaptured : Exception;

    private sealed class StageHessian(int layer, LinearInput stage, IGptqHessian hessian) : IActivationObserver
    {
        public readonly IGptqHessian Hessian = hessian;

        public void Observe(int l, LinearInput input, ReadOnlySpan<float> rows, int tokens, int w)
        {
            if (l != layer || input != stage) return;
            Hessian.Add(rows, tokens);
            throw new StageCaptured();
        }
    }
}
