using System.Globalization;
using QuantServe.Engine.Models;
using QuantServe.Engine.Quantization.Calibration;
using QuantServe.Engine.Quantization.Gguf;
using QuantServe.Engine.Quantization.Methods;

namespace QuantServe.Api.Cli;

public static partial class QuantizeCommand
{
    /// <summary>AWQ types: calibrate, search and write (see <see cref="AwqQuantizer"/>); progress on stderr, summary on stdout.</summary>
    private static async Task<int> RunAwqAsync(string modelPath, string output, AwqOptions options, string calibration, int samples, int seqLen,
        string embeddingType, TextWriter stdout, TextWriter stderr, CancellationToken cancellation)
    {
        if (samples <= 0) throw new ArgumentException("--samples must be positive");
        if (seqLen < 2) throw new ArgumentException("--seq-len must be at least 2");
        var bar = new ProgressBar(stderr);
        AwqQuantizeResult r;
        CalibrationSet set;
        try
        {
            (r, set) = await Task.Run(() =>
            {
                using var model = ModelLoader.Load(Path.GetFullPath(modelPath));
                var s = CalibrationSet.Load(calibration, model.Tokenizer, model.Config.ContextLength, samples, seqLen);
                var progress = new AwqBar(bar, model.Config.Layers);
                return (AwqQuantizer.Quantize(model, s, Path.GetFullPath(output), options, embeddingType, progress, cancellation), s);
            }, cancellation);
        }
        finally
        {
            bar.Finish();
        }
        var inv = CultureInfo.InvariantCulture;
        string layout = r.Layout == "awq-gemm" ? "AutoAWQ GEMM layout, Hugging Face folder" : "QuantServe quantized folder";
        stdout.WriteLine(string.Create(inv, $"output:      {r.OutputPath} ({layout})"));
        stdout.WriteLine(string.Create(inv, $"type:        {r.Type} (asymmetric, zero points; clipping {(options.Clip ? "on" : "off")}{(r.Layout == "quantserve" ? $", embedding {embeddingType}" : ", embedding fp16")})"));
        stdout.WriteLine(string.Create(inv, $"calibration: {set.Samples} x {set.SequenceLength} tokens from {Path.GetFileName(set.Source)}"));
        stdout.WriteLine($"{"group",-12} {"mean alpha",10} {"min",6} {"max",6} {"error vs RTN",13}");
        foreach (var g in r.Awq.Choices.GroupBy(kv => kv.Key[(kv.Key.IndexOf('.', 4) + 1)..]))
        {
            var a = g.Select(kv => kv.Value).ToList();
            double ratio = a.Sum(x => x.Error) / Math.Max(1e-30, a.Sum(x => x.RtnError));
            stdout.WriteLine(string.Create(inv, $"{g.Key,-12} {a.Average(x => x.Alpha),10:F2} {a.Min(x => x.Alpha),6:F2} {a.Max(x => x.Alpha),6:F2} {ratio,12:P1}"));
        }
        double mib = 1024.0 * 1024.0;
        stdout.WriteLine(string.Create(inv, $"matrices:    {r.Awq.Matrices.Count} ({r.Parameters:N0} weights) -> {r.MatrixBytes / mib:F2} MiB, {r.BitsPerWeight:F2} bits per weight"));
        stdout.WriteLine(string.Create(inv, $"time:        {r.Seconds:F2} s (searches {r.Awq.Seconds:F2} s)"));
        return 0;
    }

    private sealed class AwqBar(ProgressBar bar, int layers) : IProgress<AwqProgress>
    {
        public void Report(AwqProgress v) => bar.Report(new QuantizeProgress(v.Fraction, $"layer {v.Layer}: {v.Stage}", v.Layer + 1, layers));
    }
}
