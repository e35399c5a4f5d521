using QuantServe.Engine.Models;
using QuantServe.Engine.Quantization.Calibration;
using QuantServe.Engine.Quantization.Gguf;

namespace QuantServe.Api.Quantization;

/// <summary>What a job's calibration produced, as its report shows it.</summary>
/// <param name="Source">Where the text came from (<c>calibration_text</c>).</param>
/// <param name="Windows">Calibration windows run through the model.</param>
/// <param name="TokensPerWindow">Tokens in each window.</param>
/// <param name="Tensors">Weight matrices the importance matrix covers.</param>
public sealed record ImatrixSummary(string Source, int Windows, int TokensPerWindow, int Tensors);

/// <summary>Turns a job's calibration text into llama.cpp's importance matrix (what <c>quantserve imatrix</c> writes),
/// for the GGUF quantizer's k-quants.</summary>
public static class JobCalibration
{
    /// <summary>Runs <paramref name="model"/> over <paramref name="text"/> in up to <see cref="CalibrationSet.DefaultSamples"/>
    /// windows of the default length, shortened to the text when it is shorter (at least 2 tokens are needed) and capped by
    /// the model's context; returns the importance matrix and its summary.</summary>
    public static (ImportanceMatrix Matrix, ImatrixSummary Summary) Compute(LoadedModel model, string text, Action<double> progress,
        CancellationToken cancellation)
    {
        var tokenizer = model.Tokenizer;
        int tokens = tokenizer.Encode(text, addBos: false).Length + (tokenizer.AddBosByDefault && tokenizer.BosId >= 0 ? 1 : 0);
        if (tokens < 2) throw new InvalidOperationException($"calibration_text has {tokens} token(s); at least 2 are needed for an importance matrix");
        int length = Math.Min(CalibrationSet.DefaultSequenceLength, tokens);
        var set = CalibrationSet.FromText(text, tokenizer, model.Config.ContextLength, CalibrationSet.DefaultSamples, length, "calibration_text");
        var collector = CalibrationRunner.CollectImportance(model, set, new Reporter(progress), cancellation);
        var matrix = collector.ToImportanceMatrix("calibration_text");
        return (matrix, new ImatrixSummary("calibration_text", set.Samples, set.SequenceLength, collector.Entries().Count()));
    }

    private sealed class Reporter(Action<double> report) : IProgress<double>
    {
        public void Report(double value) => report(value);
    }
}
