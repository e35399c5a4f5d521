using System.Diagnostics;
using QuantServe.Engine.Formats.Gptq;
using QuantServe.Engine.Models;
using QuantServe.Engine.Quantization.Calibration;

namespace QuantServe.Engine.Quantization.Methods;

/// <summary>What <see cref="GptqPipeline.Quantize"/> did.</summary>
public sealed record GptqPipelineResult(string OutputPath, string Type, int Samples, int SequenceLength, int Matrices,
    long Parameters, long BytesWritten, double GptqSeconds, double Seconds);

/// <summary>
/// The whole GPTQ run: load a Hugging Face model, tokenize the calibration text into windows
/// (<see cref="CalibrationSet"/>: N samples of L tokens, L capped at the context), quantize layer by layer
/// (<see cref="GptqModelQuantizer"/>) and write the Hugging Face GPTQ checkpoint (<see cref="GptqCheckpointWriter"/>),
/// atomically.
/// </summary>
public static class GptqPipeline
{
    /// <summary>Quantizes <paramref name="input"/> to <paramref name="type"/> using the text of <paramref name="calibrationText"/>.</summary>
    public static GptqPipelineResult Quantize(string input, string output, string type, string calibrationText, string calibrationSource,
        int samples = CalibrationSet.DefaultSamples, int sequenceLength = CalibrationSet.DefaultSequenceLength,
        IProgress<GptqProgress>? progress = null, CancellationToken cancellation = default, IGptqAccelerator? accelerator = null)
    {
        var sw = Stopwatch.StartNew();
        var options = GptqTypes.Parse(type);
        using var model = ModelLoader.Load(input);
        GptqCheckpointWriter.CheckSource(model);
        var set = CalibrationSet.FromText(calibrationText, model.Tokenizer, model.Config.ContextLength, samples, sequenceLength, calibrationSource);
        var result = GptqModelQuantizer.Quantize(model, set, options, accelerator, progress, cancellation);
        long bytes = GptqCheckpointWriter.Write(model, result, options, output, cancellation);
        long parameters = result.Matrices.Values.Sum(m => (long)m.Rows * m.Cols);
        return new GptqPipelineResult(Path.GetFullPath(output), GptqTypes.Name(options), set.Samples, set.SequenceLength,
            result.Matrices.Count, parameters, bytes, result.Seconds, sw.Elapsed.TotalSeconds);
    }

    /// <summary>Reads a calibration file (plain text, or JSONL of {"text": ...}) as one text; see <see cref="CalibrationSet.Load"/>.</summary>
    public static string ReadCalibrationText(string path) => CalibrationSet.ReadText(path);
}
