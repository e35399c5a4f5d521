using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;

namespace QuantServe.Engine.Quantization.Calibration;

/// <summary>Runs a model over calibration windows with an <see cref="IActivationObserver"/> attached.</summary>
public static class CalibrationRunner
{
    /// <summary>
    /// Feeds every window of <paramref name="set"/> through <paramref name="model"/> (one fresh KV cache per window, so
    /// windows are independent sequences) while <paramref name="observer"/> sees every linear input. Reports the fraction
    /// of windows done.
    /// </summary>
    public static void Run(LoadedModel model, CalibrationSet set, IActivationObserver observer,
        IProgress<double>? progress = null, CancellationToken cancellation = default)
    {
        var llama = new LlamaModel(model, Math.Min(512, set.SequenceLength)) { Observer = observer };
        var cache = llama.CreateCache(set.SequenceLength);
        var logits = new float[llama.VocabSize];
        for (int i = 0; i < set.Samples; i++)
        {
            cancellation.ThrowIfCancellationRequested();
            cache.Clear();
            llama.Forward(cache, set.Windows[i], logits);
            progress?.Report((i + 1) / (double)set.Samples);
        }
    }

    /// <summary>Collects llama.cpp's importance matrix of <paramref name="model"/> over <paramref name="set"/>.</summary>
    public static ImportanceMatrixCollector CollectImportance(LoadedModel model, CalibrationSet set,
        IProgress<double>? progress = null, CancellationToken cancellation = default)
    {
        var collector = new ImportanceMatrixCollector(model.Config);
        Run(model, set, collector, progress, cancellation);
        collector.Chunks = set.Samples;
        return collector;
    }
}
