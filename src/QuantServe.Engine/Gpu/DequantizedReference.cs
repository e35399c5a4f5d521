using System.Runtime.InteropServices;
using QuantServe.Engine.Models;
using QuantServe.Engine.Quantization.Formats;
using QuantServe.Engine.Tensors;
using QuantServe.Engine.Tensors.Formats;

namespace QuantServe.Engine.Gpu;

/// <summary>
/// A CPU copy of a model with every matrix dequantized to F32 (the formats' own <c>DequantizeRow</c>): the exact math the
/// F32-activation GPU kernels compute, without the CPU kernels' int8 activation quantization. Comparing the GPU with it
/// isolates the GPU's own error; comparing with the CPU model as loaded shows the combined activation-quantization effect.
/// </summary>
public static unsafe class DequantizedReference
{
    private sealed class NativeBlock(nint p) : IDisposable
    {
        private nint _p = p;
        public void Dispose() { if (_p != 0) NativeMemory.Free((void*)_p); _p = 0; }
    }

    /// <summary>A new model sharing <paramref name="model"/>'s configuration and tokenizer, with F32 matrices in native memory.</summary>
    public static LoadedModel Create(LoadedModel model) => Convert(model, null, null, false);

    /// <summary>
    /// A new model whose layer matrices are re-quantized in memory to <paramref name="layerFormat"/> and whose output head
    /// to <paramref name="headFormat"/> (round-to-nearest from the dequantized weights; the embedding stays as stored) —
    /// for benchmarks of formats that cannot be written from the source file (a GGUF's RTN variants).
    /// </summary>
    /// <remarks>With <paramref name="ownSource"/> the new model disposes <paramref name="model"/> (whose mapped embedding it reads).</remarks>
    public static LoadedModel Requantize(LoadedModel model, RtnFormat layerFormat, RtnFormat headFormat, bool ownSource = false)
        => Convert(model, layerFormat, headFormat, ownSource);

    private static LoadedModel Convert(LoadedModel model, RtnFormat? layerFormat, RtnFormat? headFormat, bool ownSource)
    {
        var resources = new List<IDisposable>();
        if (ownSource) resources.Add(model);
        var map = new Dictionary<WeightMatrix, WeightMatrix>(ReferenceEqualityComparer.Instance);
        var src = model.Weights;
        WeightMatrix F32(WeightMatrix w)
        {
            if (map.TryGetValue(w, out var done)) return done;
            var target = layerFormat == null ? null
                : ReferenceEquals(w, src.Output) ? headFormat : ReferenceEquals(w, src.TokenEmbedding) ? null : layerFormat;
            if (layerFormat != null && target == null) return w;
            long rowBytes = target?.RowBytes(w.Cols) ?? w.Cols * 4L;
            nint p = (nint)NativeMemory.Alloc((nuint)Math.Max(rowBytes * w.Rows, 4));
            resources.Add(new NativeBlock(p));
            Parallel.For(0, w.Rows, () => new float[w.Cols], (r, _, row) =>
            {
                if (target == null) w.DequantizeRow(r, new Span<float>((float*)p + (long)r * w.Cols, w.Cols));
                else
                {
                    w.DequantizeRow(r, row);
                    target.QuantizeRow(row, new Span<byte>((byte*)p + r * rowBytes, (int)rowBytes));
                }
                return row;
            }, _ => { });
            return map[w] = new WeightMatrix(w.Name, (TensorFormat?)target ?? F32Format.Instance, w.Rows, w.Cols, (byte*)p);
        }
        var weights = new LlamaWeights
        {
            TokenEmbedding = F32(src.TokenEmbedding),
            Layers = src.Layers.Select(l => new LayerWeights
            {
                AttnNorm = l.AttnNorm, FfnNorm = l.FfnNorm, Bq = l.Bq, Bk = l.Bk, Bv = l.Bv,
                Wq = F32(l.Wq), Wk = F32(l.Wk), Wv = F32(l.Wv), Wo = F32(l.Wo), Gate = F32(l.Gate), Up = F32(l.Up), Down = F32(l.Down),
            }).ToArray(),
            FinalNorm = src.FinalNorm,
            Output = F32(src.Output),
        };
        string note = layerFormat == null ? " (dequantized to F32)" : $" (re-quantized to {layerFormat.Name}, head {headFormat!.Name})";
        return new LoadedModel(model.SourcePath, model.SourceFormat + note, model.Config, weights, model.Tokenizer, resources);
    }
}
