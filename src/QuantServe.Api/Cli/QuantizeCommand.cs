using System.CommandLine;
using System.Globalization;
using QuantServe.Engine.Gpu;
using QuantServe.Engine.Quantization.Calibration;
using QuantServe.Engine.Quantization.Gguf;
using QuantServe.Engine.Quantization.Methods;
using QuantServe.Engine.Quantization.Presets;
using QuantServe.Engine.Quantization.Rtn;

namespace QuantServe.Api.Cli;

/// <summary>
/// <c>quantserve quantize</c>: llama-quantize's presets for any loadable model, written as GGUF. Progress goes to stderr,
/// the summary (tensors per type, sizes, bits per weight, time) to stdout.
/// </summary>
public static partial class QuantizeCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var model = new Option<string>("--model", "-m") { Description = "Source model: a .gguf file, a Hugging Face folder or a llama2.c checkpoint", Required = true };
        var output = new Option<string>("--out", "-o") { Description = "Output .gguf path (written atomically)", Required = true };
        var type = new Option<string>("--type") { Description = $"File type: {GgufPresets.Names}", Required = true };
        var threads = new Option<int>("--threads", "-t") { Description = "Worker threads (0 = one per core)", DefaultValueFactory = _ => 0 };
        var tensorType = new Option<string[]>("--tensor-type")
        {
            Description = "PATTERN=TYPE: tensors whose name matches the regular expression get TYPE (repeatable; the last match wins; TYPE 'keep' keeps the source precision)",
            AllowMultipleArgumentsPerToken = false,
        };
        var keep = new Option<string[]>("--keep") { Description = "PATTERN: tensors matching it keep the source precision (same as --tensor-type PATTERN=keep)" };
        var imatrix = new Option<string?>("--imatrix") { Description = "Importance matrix (llama-imatrix .dat or GGUF) for the k-quants" };
        var name = new Option<string?>("--name") { Description = "general.name to write" };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Print the type and rule of every tensor" };
        var embeddingType = new Option<string>("--embedding-type")
        {
            Description = "QuantServe's own types only: type of the token embedding / untied output head (int8, nf4, F16, F32, ...)",
            DefaultValueFactory = _ => "int8",
        };
        var calibration = new Option<string?>("--calibration", "-f") { Description = "GPTQ and AWQ types: calibration text, plain text or JSONL with one {\"text\": ...} per line" };
        var samples = new Option<int>("--samples", "-n") { Description = "GPTQ and AWQ types: calibration windows", DefaultValueFactory = _ => CalibrationSet.DefaultSamples };
        var seqLen = new Option<int>("--seq-len") { Description = "GPTQ and AWQ types: tokens per calibration window (capped at the model's context)", DefaultValueFactory = _ => CalibrationSet.DefaultSequenceLength };
        var device = new Option<string>("--device")
        {
            Description = "Where the k-quant searches and GPTQ's Hessian/sweep run: auto (a CUDA GPU when present, else the CPU), cpu, cuda or cuda:N. GGUF output is byte-identical either way",
            DefaultValueFactory = _ => "auto",
        };
        var command = new Command("quantize", "Quantize a model to GGUF with llama.cpp's presets (Q4_K_M, Q8_0, ...), with QuantServe's own types (int8, int4-g32, nf4, llm-int8, ...) to a quantized model folder, with GPTQ (gptq-int4-g128[-act][-asym], ...) to a Hugging Face GPTQ checkpoint, or with AWQ (awq-int4-g128: AutoAWQ's GEMM layout; awq-int3-g128: a quantized folder).")
        {
            model, output, type, threads, tensorType, keep, imatrix, name, verbose, embeddingType, calibration, samples, seqLen, device,
        };
        command.SetAction(async (parse, cancellation) =>
        {
            var stdout = parse.InvocationConfiguration.Output;
            var stderr = parse.InvocationConfiguration.Error;
            int n = parse.GetValue(threads);
            if (n < 0) throw new ArgumentException("--threads must be >= 0");
            if (AwqTypes.Parse(parse.GetValue(type)) is { } awq)
            {
                if ((parse.GetValue(tensorType)?.Length ?? 0) > 0 || (parse.GetValue(keep)?.Length ?? 0) > 0 || parse.GetValue(imatrix) != null)
                    throw new ArgumentException("--tensor-type, --keep and --imatrix apply to GGUF types only, not to AWQ");
                string calib = parse.GetValue(calibration) ?? throw new ArgumentException($"{parse.GetValue(type)} needs calibration text: --calibration FILE");
                return await RunAwqAsync(parse.GetValue(model)!, parse.GetValue(output)!, awq with { Threads = n }, calib, parse.GetValue(samples),
                    parse.GetValue(seqLen), parse.GetValue(embeddingType)!, stdout, stderr, cancellation);
            }
            if (GptqTypes.IsGptq(parse.GetValue(type)))
            {
                if ((parse.GetValue(tensorType)?.Length ?? 0) > 0 || (parse.GetValue(keep)?.Length ?? 0) > 0 || parse.GetValue(imatrix) != null)
                    throw new ArgumentException("--tensor-type, --keep and --imatrix apply to GGUF types only, not to GPTQ");
                string calib = parse.GetValue(calibration) ?? throw new ArgumentException("GPTQ types need calibration text: --calibration FILE");
                if (parse.GetValue(samples) <= 0) throw new ArgumentException("--samples must be positive");
                if (parse.GetValue(seqLen) < 2) throw new ArgumentException("--seq-len must be at least 2");
                using var gptqDevice = GpuQuantization.Select(DeviceSelection.Parse(parse.GetValue(device)), stderr.WriteLine);
                return await RunGptqAsync(parse.GetValue(model)!, parse.GetValue(output)!, parse.GetValue(type)!, Path.GetFullPath(calib),
                    parse.GetValue(samples), parse.GetValue(seqLen), stdout, stderr, cancellation, gptqDevice);
            }
            if (parse.GetValue(calibration) != null) throw new ArgumentException("--calibration applies to GPTQ and AWQ types only (use `quantserve imatrix` for the k-quants)");
            if (RtnQuantizer.IsRtnType(parse.GetValue(type)!))
            {
                if ((parse.GetValue(tensorType)?.Length ?? 0) > 0 || (parse.GetValue(keep)?.Length ?? 0) > 0 || parse.GetValue(imatrix) != null)
                    throw new ArgumentException("--tensor-type, --keep and --imatrix apply to GGUF types only, not to QuantServe's own types");
                return await RunRtnAsync(parse.GetValue(model)!, parse.GetValue(output)!, parse.GetValue(type)!, parse.GetValue(embeddingType)!,
                    n, stdout, stderr, cancellation);
            }
            var preset = GgufPresets.Find(parse.GetValue(type)!);
            var overrides = new List<TensorTypeOverride>();
            foreach (var rule in parse.GetValue(tensorType) ?? []) overrides.Add(TensorTypeOverride.Parse(rule));
            foreach (var pattern in parse.GetValue(keep) ?? []) overrides.Add(new TensorTypeOverride(pattern, null));
            var selection = DeviceSelection.Parse(parse.GetValue(device));
            var bar = new ProgressBar(stderr);
            using var accelerator = GpuQuantization.Select(selection, stderr.WriteLine);
            var options = new QuantizeOptions
            {
                Accelerator = accelerator,
                Preset = preset,
                Threads = n > 0 ? n : Environment.ProcessorCount,
                Overrides = overrides,
                Imatrix = parse.GetValue(imatrix) is { } im ? ImportanceMatrix.Load(im) : null,
                Name = parse.GetValue(name),
                Progress = bar,
            };
            string source = Path.GetFullPath(parse.GetValue(model)!);
            string target = Path.GetFullPath(parse.GetValue(output)!);
            QuantizeResult result;
            try
            {
                result = await Task.Run(() => GgufQuantizer.Quantize(source, target, options, cancellation), cancellation);
            }
            finally
            {
                bar.Finish();
            }
            WriteSummary(stdout, result, parse.GetValue(verbose));
            return 0;
        });
        return command;
    }

    /// <summary>QuantServe's own types (int8, int4-g32, nf4, llm-int8, ...): a quantized model folder via <see cref="RtnQuantizer"/>.</summary>
    private static async Task<int> RunRtnAsync(string model, string output, string type, string embeddingType, int threads,
        TextWriter stdout, TextWriter stderr, CancellationToken cancellation)
    {
        var bar = new ProgressBar(stderr);
        var options = new RtnQuantizeOptions
        {
            Type = type,
            EmbeddingType = embeddingType,
            Threads = threads > 0 ? threads : Environment.ProcessorCount,
            Progress = new RtnProgress(bar),
        };
        string source = Path.GetFullPath(model);
        string target = Path.GetFullPath(output);
        RtnQuantizeResult r;
        try
        {
            r = await Task.Run(() => RtnQuantizer.Quantize(source, target, options, cancellation), cancellation);
        }
        finally
        {
            bar.Finish();
        }
        var inv = CultureInfo.InvariantCulture;
        stdout.WriteLine(string.Create(inv, $"output:     {r.OutputPath} (quantized folder)"));
        stdout.WriteLine(string.Create(inv, $"type:       {r.Type} (embedding {embeddingType})"));
        stdout.WriteLine($"{"format",-14} {"tensors",8} {"weights",14} {"bytes",14}");
        foreach (var g in r.Tensors.GroupBy(t => t.Type).OrderByDescending(g => g.Sum(t => t.BytesAfter)))
            stdout.WriteLine(string.Create(inv, $"{g.Key,-14} {g.Count(),8} {g.Sum(t => (long)t.Rows * t.Cols),14:N0} {g.Sum(t => t.BytesAfter),14:N0}"));
        double mib = 1024.0 * 1024.0;
        stdout.WriteLine(string.Create(inv, $"size:       {r.BytesBefore / mib:F2} MiB -> {r.BytesAfter / mib:F2} MiB ({r.BytesBefore * 8.0 / Math.Max(1, r.Parameters):F2} -> {r.BitsPerWeight:F2} bits per weight, matrices)"));
        stdout.WriteLine(string.Create(inv, $"time:       {r.Seconds:F2} s"));
        return 0;
    }

    /// <summary>GPTQ types: a Hugging Face GPTQ checkpoint folder via <see cref="GptqPipeline"/>.</summary>
    private static async Task<int> RunGptqAsync(string model, string output, string type, string calibration, int samples, int seqLen,
        TextWriter stdout, TextWriter stderr, CancellationToken cancellation, IGptqAccelerator? accelerator)
    {
        string text = CalibrationSet.ReadText(calibration);
        var bar = new ProgressBar(stderr);
        var progress = new GptqBarProgress(bar);
        GptqPipelineResult r;
        try
        {
            r = await Task.Run(() => GptqPipeline.Quantize(Path.GetFullPath(model), Path.GetFullPath(output), type, text, calibration,
                samples, seqLen, progress, cancellation, accelerator), cancellation);
        }
        finally
        {
            bar.Finish();
        }
        var inv = CultureInfo.InvariantCulture;
        stdout.WriteLine(string.Create(inv, $"output:      {r.OutputPath} (Hugging Face GPTQ checkpoint)"));
        stdout.WriteLine(string.Create(inv, $"type:        {r.Type}"));
        stdout.WriteLine(string.Create(inv, $"calibration: {r.Samples} windows x {r.SequenceLength} tokens from {calibration}"));
        stdout.WriteLine(string.Create(inv, $"matrices:    {r.Matrices} ({r.Parameters:N0} weights)"));
        stdout.WriteLine(string.Create(inv, $"size:        {r.BytesWritten / (1024.0 * 1024.0):F2} MiB model.safetensors"));
        stdout.WriteLine(string.Create(inv, $"time:        {r.Seconds:F2} s (GPTQ {r.GptqSeconds:F2} s)"));
        return 0;
    }

    // Synchronous so that reports arrive in order.
    private sealed class GptqBarProgress(ProgressBar bar) : IProgress<GptqProgress>
    {
        public void Report(GptqProgress v) => bar.Report(new QuantizeProgress(v.Fraction, $"layer {v.Layer} {v.Stage}", v.Layer + 1, v.Layers));
    }

    private sealed class RtnProgress(ProgressBar bar) : IProgress<RtnQuantizeProgress>
    {
        public void Report(RtnQuantizeProgress v) => bar.Report(new QuantizeProgress(v.Fraction, v.Tensor, v.Index, v.Count));
    }

    private static void WriteSummary(TextWriter o, QuantizeResult r, bool perTensor)
    {
        var inv = CultureInfo.InvariantCulture;
        if (perTensor)
        {
            o.WriteLine($"{"tensor",-32} {"shape",-14} {"from",-6} {"to",-6} {"bytes",12}  rule");
            foreach (var t in r.Tensors)
            {
                var p = t.Tensor;
                o.WriteLine(string.Create(inv, $"{p.Name,-32} {string.Join('x', p.Dims),-14} {p.SourceType,-6} {p.Type,-6} {t.BytesAfter,12}  {p.Rule}"));
            }
            o.WriteLine();
        }
        o.WriteLine(string.Create(inv, $"output:     {r.OutputPath}"));
        o.WriteLine(string.Create(inv, $"type:       {r.Preset.Name} (general.file_type {r.Preset.FileType})"));
        o.WriteLine($"{"format",-8} {"tensors",8} {"weights",14} {"bytes",14}");
        foreach (var g in r.Tensors.GroupBy(t => t.Tensor.Type).OrderByDescending(g => g.Sum(t => t.BytesAfter)))
            o.WriteLine(string.Create(inv, $"{g.Key,-8} {g.Count(),8} {g.Sum(t => t.Tensor.Elements),14:N0} {g.Sum(t => t.BytesAfter),14:N0}"));
        double mib = 1024.0 * 1024.0;
        o.WriteLine(string.Create(inv, $"size:       {r.BytesBefore / mib:F2} MiB -> {r.BytesAfter / mib:F2} MiB ({r.BytesBefore * 8.0 / r.Parameters:F2} -> {r.BitsPerWeight:F2} bits per weight)"));
        o.WriteLine(string.Create(inv, $"time:       {r.Seconds:F2} s"));
    }

    /// <summary>A one-line progress bar redrawn in place on stderr, at most once per percent.</summary>
    private sealed class ProgressBar(TextWriter error) : IProgress<QuantizeProgress>
    {
        private int _lastPercent = -1;
        private string _lastTensor = "";

        public void Report(QuantizeProgress value)
        {
            lock (this)
            {
                int percent = (int)(value.Fraction * 100);
                if (percent == _lastPercent && value.Tensor == _lastTensor) return;
                _lastPercent = percent;
                _lastTensor = value.Tensor;
                int filled = percent * 30 / 100;
                error.Write($"\r[{new string('#', filled)}{new string('.', 30 - filled)}] {percent,3}% {value.Index}/{value.Count} {value.Tensor,-40}");
            }
        }

        public void Finish()
        {
            lock (this) error.WriteLine();
        }
    }
}
