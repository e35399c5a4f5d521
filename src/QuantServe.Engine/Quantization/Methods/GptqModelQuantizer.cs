using System.Diagnostics;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;
using QuantServe.Engine.Quantization.Calibration;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Quantization.Methods;

/// <summary>Progress of <see cref="GptqModelQuantizer.Quantize"/>: fraction done and the layer at work.</summary>
public sealed record GptqProgress(double Fraction, int Layer, int Layers, string Stage);

/// <summary>GPTQ results of a whole model by GGUF tensor name (<c>blk.N.attn_q.weight</c> …), and the time taken.</summary>
public sealed record GptqModelResult(IReadOnlyDictionary<string, GptqResult> Matrices, double Seconds);

/// <summary>
/// GPTQ over every linear layer of the transformer blocks (the embedding and output head keep their precision). Layers are
/// processed in order; for layer l the calibration windows are run through the model, whose layers before l already hold
/// their dequantized GPTQ weights, so each layer is calibrated on the outputs of the quantized layers before it. Only
/// layer l's four input Hessians (q/k/v, output, gate/up, down) are held at a time. After quantizing a layer its matrices
/// in <see cref="LoadedModel.Weights"/> are replaced by F32 matrices of the dequantized weights: on return the model
/// computes exactly what the GPTQ checkpoint does (useful for evaluation).
/// </summary>
public static class GptqModelQuantizer
{
    /// <summary>Quantizes <paramref name="model"/> in place (see the class summary).</summary>
    public static GptqModelResult Quantize(LoadedModel model, CalibrationSet set, GptqOptions options,
        IProgress<GptqProgress>? progress = null, CancellationToken cancellation = default)
        => Run(model, set, options, progress, cancellation);

    /// <summary>
    /// Round-to-nearest on the same grid (per-row, per-group min/max, same bits and symmetry), in place: GPTQ with an
    /// identity Hessian, whose inverse factor is diagonal so no error is carried to other columns. The baseline GPTQ is
    /// measured against.
    /// </summary>
    public static GptqModelResult RoundToNearest(LoadedModel model, GptqOptions options, CancellationToken cancellation = default)
        => Run(model, null, options with { ActOrder = false }, null, cancellation);

    private static double[] Identity(int n)
    {
        var h = new double[n * n];
        for (int i = 0; i < n; i++) h[i * n + i] = 1;
        return h;
    }

    private static GptqModelResult Run(LoadedModel model, CalibrationSet? set, GptqOptions options,
        IProgress<GptqProgress>? progress, CancellationToken cancellation)
    {
        options.Validate();
        var sw = Stopwatch.StartNew();
        var c = model.Config;
        var results = new Dictionary<string, GptqResult>(StringComparer.Ordinal);
        for (int l = 0; l < c.Layers; l++)
        {
            double[][] h;
            if (set is null)
                h = [Identity(c.Dim), Identity(c.QDim), Identity(c.Dim), Identity(c.HiddenDim)];
            else
            {
                var observer = new LayerHessians(l, c);
                int layer = l;
                CalibrationRunner.Run(model, set, observer,
                    new Progress(f => progress?.Report(new GptqProgress((layer + 0.5 * f) / c.Layers, layer, c.Layers, "calibrate"))), cancellation);
                h = observer.Hessians.Select(x => x.ToMatrix()).ToArray();
            }
            var L = model.Weights.Layers[l];
            (string Name, WeightMatrix W, int Input)[] jobs =
            [
                ("attn_q", L.Wq, 0), ("attn_k", L.Wk, 0), ("attn_v", L.Wv, 0), ("attn_output", L.Wo, 1),
                ("ffn_gate", L.Gate, 2), ("ffn_up", L.Up, 2), ("ffn_down", L.Down, 3),
            ];
            var replaced = new WeightMatrix[jobs.Length];
            for (int j = 0; j < jobs.Length; j++)
            {
                cancellation.ThrowIfCancellationRequested();
                var (name, w, input) = jobs[j];
                var dense = new float[w.Rows * w.Cols];
                for (int r = 0; r < w.Rows; r++) w.DequantizeRow(r, dense.AsSpan(r * w.Cols, w.Cols));
                var result = GptqQuantizer.Quantize(dense, w.Rows, w.Cols, h[input], options);
                results[$"blk.{l}.{name}.weight"] = result;
                replaced[j] = F32Matrix(w.Name, result);
                progress?.Report(new GptqProgress((l + 0.5 + 0.5 * (j + 1) / jobs.Length) / c.Layers, l, c.Layers, name));
            }
            model.Weights.Layers[l] = new LayerWeights
            {
                AttnNorm = L.AttnNorm, FfnNorm = L.FfnNorm, Bq = L.Bq, Bk = L.Bk, Bv = L.Bv,
                Wq = replaced[0], Wk = replaced[1], Wv = replaced[2], Wo = replaced[3],
                Gate = replaced[4], Up = replaced[5], Down = replaced[6],
            };
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

    private sealed class LayerHessians(int layer, ModelConfig c) : IActivationObserver
    {
        public readonly GptqHessian[] Hessians = [new(c.Dim), new(c.QDim), new(c.Dim), new(c.HiddenDim)];

        public void Observe(int l, LinearInput input, ReadOnlySpan<float> rows, int tokens, int width)
        {
            if (l == layer) Hessians[(int)input].Add(rows, tokens);
        }
    }
}
