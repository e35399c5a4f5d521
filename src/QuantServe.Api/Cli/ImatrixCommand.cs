using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using QuantServe.Engine.Models;
using QuantServe.Engine.Quantization.Calibration;

namespace QuantServe.Api.Cli;

/// <summary>
/// <c>quantserve imatrix</c>: runs a model over calibration text and writes llama.cpp's importance matrix (legacy
/// <c>.dat</c> layout, readable by <c>quantize --imatrix</c> and llama.cpp's <c>llama-quantize</c>).
/// </summary>
public static class ImatrixCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var model = new Option<string>("--model", "-m") { Description = "Model: a .gguf file, a Hugging Face folder or a llama2.c checkpoint", Required = true };
        var calibration = new Option<string>("--calibration", "-f") { Description = "Calibration text: plain text or JSONL with one {\"text\": ...} per line", Required = true };
        var output = new Option<string>("--out", "-o") { Description = "Output importance matrix (.dat)", Required = true };
        var samples = new Option<int>("--samples", "-n") { Description = "Number of calibration windows", DefaultValueFactory = _ => CalibrationSet.DefaultSamples };
        var length = new Option<int>("--seq-len") { Description = "Tokens per window (capped at the model's context)", DefaultValueFactory = _ => CalibrationSet.DefaultSequenceLength };
        var command = new Command("imatrix", "Compute an importance matrix (per-column mean squared activations) from calibration text.")
        {
            model, calibration, output, samples, length,
        };
        command.SetAction(async (parse, cancellation) =>
        {
            var stdout = parse.InvocationConfiguration.Output;
            var stderr = parse.InvocationConfiguration.Error;
            int n = parse.GetValue(samples), len = parse.GetValue(length);
            if (n <= 0) throw new ArgumentException("--samples must be positive");
            if (len < 2) throw new ArgumentException("--seq-len must be at least 2");
            string calib = Path.GetFullPath(parse.GetValue(calibration)!);
            string target = Path.GetFullPath(parse.GetValue(output)!);
            var sw = Stopwatch.StartNew();
            using var loaded = ModelLoader.Load(Path.GetFullPath(parse.GetValue(model)!));
            var set = CalibrationSet.Load(calib, loaded.Tokenizer, loaded.Config.ContextLength, n, len);
            var bar = new Progress(stderr, set.Samples);
            ImportanceMatrixCollector collector;
            try
            {
                collector = await Task.Run(() => CalibrationRunner.CollectImportance(loaded, set, bar, cancellation), cancellation);
            }
            finally
            {
                stderr.WriteLine();
            }
            collector.WriteDat(target, Path.GetFileName(calib));
            var inv = CultureInfo.InvariantCulture;
            stdout.WriteLine(string.Create(inv, $"calibration: {set.Samples} windows x {set.SequenceLength} tokens ({set.TokenCount} tokens) from {calib}"));
            stdout.WriteLine(string.Create(inv, $"entries:     {collector.Entries().Count()} tensors"));
            stdout.WriteLine(string.Create(inv, $"written:     {target}"));
            stdout.WriteLine(string.Create(inv, $"time:        {sw.Elapsed.TotalSeconds:F2} s"));
            return 0;
        });
        return command;
    }

    // Synchronous so that reports arrive in order on the calibration thread.
    private sealed class Progress(TextWriter error, int windows) : IProgress<double>
    {
        private int _last = -1;

        public void Report(double fraction)
        {
            int percent = (int)(fraction * 100);
            if (percent == _last) return;
            _last = percent;
            int filled = percent * 30 / 100;
            error.Write($"\r[{new string('#', filled)}{new string('.', 30 - filled)}] {percent,3}% {(int)Math.Round(fraction * windows)}/{windows} windows");
        }
    }
}
