using System.Diagnostics;
using QuantServe.Engine.Formats.Awq;
using QuantServe.Engine.Models;
using QuantServe.Engine.Quantization.Calibration;
using QuantServe.Engine.Quantization.Rtn;

namespace QuantServe.Engine.Quantization.Methods;

/// <summary>What <see cref="AwqQuantizer.Quantize"/> wrote.</summary>
/// <param name="OutputPath">The output folder.</param>
/// <param name="Layout"><c>awq-gemm</c> (AutoAWQ's Hugging Face layout) or <c>quantserve</c> (a quantized folder).</param>
/// <param name="Type">The AWQ type (<c>awq-int4-g128</c>).</param>
/// <param name="Awq">The searches' result.</param>
/// <param name="MatrixBytes">Bytes of the quantized layer matrices as written.</param>
/// <param name="Parameters">Weights in those matrices.</param>
/// <param name="Seconds">Wall time, searches and writing.</param>
public sealed record AwqQuantizeResult(string OutputPath, string Layout, string Type, AwqModelResult Awq, long MatrixBytes, long Parameters, double Seconds)
{
    /// <summary>Stored bits per layer-matrix weight.</summary>
    public double BitsPerWeight => Parameters == 0 ? 0 : 8.0 * MatrixBytes / Parameters;
}

/// <summary>
/// AWQ of a loaded model (in place, <see cref="AwqModelQuantizer"/>) written to disk: 4-bit with whole groups from a Hugging
/// Face source in AutoAWQ's GEMM layout (<see cref="AwqCheckpoint"/>); otherwise — 3-bit, which the GEMM layout does not
/// hold, ragged groups, or a llama2.c source — as a QuantServe quantized folder of <c>intB-gG-asym</c> matrices holding
/// the same codes, scales and zero points (<see cref="RtnQuantizer"/>'s layout, method "awq").
/// </summary>
public static class AwqQuantizer
{
    /// <summary>Quantizes <paramref name="model"/> (modified in place) and writes it to <paramref name="output"/>.</summary>
    public static AwqQuantizeResult Quantize(LoadedModel model, CalibrationSet set, string output, AwqOptions options,
        string embeddingType = "int8", IProgress<AwqProgress>? progress = null, CancellationToken cancellation = default)
    {
        var sw = Stopwatch.StartNew();
        var result = AwqModelQuantizer.Quantize(model, set, options, progress, cancellation);
        long parameters = result.Matrices.Values.Sum(m => (long)m.Rows * m.Cols);
        bool gemm = options.Bits == 4 && model.SourceFormat == "safetensors"
            && result.Matrices.Values.All(m => m.Rows % 8 == 0 && m.Cols % m.GroupSize == 0);
        if (gemm)
        {
            long bytes = AwqCheckpoint.Save(model, result, output, cancellation);
            return new AwqQuantizeResult(Path.GetFullPath(output), "awq-gemm", AwqTypes.Name(options), result, bytes, parameters, sw.Elapsed.TotalSeconds);
        }
        AwqModelQuantizer.UseIntegerKernels(model, result);
        var written = RtnQuantizer.Quantize(model, output, new RtnQuantizeOptions
        {
            Type = $"int{options.Bits}-g{options.GroupSize}-asym",
            EmbeddingType = embeddingType,
            Method = "awq",
            Threads = options.Parallelism,
        }, cancellation);
        long matrixBytes = written.Tensors.Where(t => t.Type == written.Type).Sum(t => t.BytesAfter);
        return new AwqQuantizeResult(written.OutputPath, "quantserve", AwqTypes.Name(options), result, matrixBytes, parameters, sw.Elapsed.TotalSeconds);
    }
}
