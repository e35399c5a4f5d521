using System.Diagnostics;
using System.Reflection;
using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using QuantServe.Api.Hosting;
using QuantServe.Api.Registry;
using QuantServe.Engine.Evaluation;
using QuantServe.Engine.Gpu;
using QuantServe.Engine.Models;
using QuantServe.Engine.Quantization.Calibration;
using QuantServe.Engine.Quantization.Gguf;
using QuantServe.Engine.Quantization.Methods;
using QuantServe.Engine.Quantization.Presets;
using QuantServe.Engine.Quantization.Rtn;

namespace QuantServe.Api.Quantization;

/// <summary>
/// Runs one job: load → quantize → evaluate → layer error → VRAM → task eval → register. Progress is weighted per
/// stage (<see cref="Weights"/>) and stored; the artifact is written under a hidden temporary name in the produced-models
/// directory and renamed only when complete, so a killed job never leaves a half model that could be served.
/// </summary>
public sealed class JobRunner : IDisposable
{
    /// <summary>Prefix of temporary artifacts (hidden, so the model catalog never lists them).</summary>
    public const string PartialPrefix = ".partial-";

    private static readonly (string Stage, double Weight)[] Weights =
        [("load", 0.05), ("quantize", 0.45), ("evaluate", 0.30), ("layers", 0.10), ("vram", 0.02), ("task_eval", 0.06), ("register", 0.02)];

    internal static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, WriteIndented = false };

    private readonly JobStore _store;
    private readonly ModelRegistry _registry;
    private readonly QuantizationTelemetry _telemetry;
    private readonly QuantServeOptions _options;
    private readonly ILogger<JobRunner> _log;
    private readonly Lazy<GpuQuantization?> _accelerator;

    /// <summary>
    /// Creates the runner. GGUF k-quant and GPTQ jobs run their heavy loops on the device named by <c>QuantServe:Device</c>
    /// (auto | cpu | cuda[:N], default auto: a CUDA GPU when one is usable), opened on the first such job with one log line.
    /// </summary>
    public JobRunner(JobStore store, ModelRegistry registry, QuantizationTelemetry telemetry, IOptions<QuantServeOptions> options, ILogger<JobRunner> log,
        IConfiguration? configuration = null)
    {
        _store = store;
        _registry = registry;
        _telemetry = telemetry;
        _options = options.Value;
        _log = log;
        string? device = configuration?["QuantServe:Device"];
        _accelerator = new Lazy<GpuQuantization?>(() => GpuQuantization.Select(DeviceSelection.Parse(device), line => _log.LogInformation("{Line}", line)));
    }

    /// <summary>The quantizers' device, or null for the CPU; a device that fails to open falls back to the CPU (logged).</summary>
    private GpuQuantization? Accelerator
    {
        get
        {
            try { return _accelerator.Value; }
            catch (Exception e) when (e is QuantServe.Engine.Gpu.Cuda.CudaException or DllNotFoundException or FormatException)
            {
                _log.LogWarning("quantize: heavy loops on the cpu ({Reason})", e.Message);
                return null;
            }
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_accelerator.IsValueCreated) _accelerator.Value?.Dispose();
    }

    /// <summary>The produced-models directory.</summary>
    public string ModelsDirectory => _options.ResolveProducedModelsDirectory();

    /// <summary>The built-in evaluation text (an embedded slice of held-out English prose and Python docs).</summary>
    public static string DefaultEvalText { get; } = ReadDefaultEval();

    private static string ReadDefaultEval()
    {
        using var s = Assembly.GetExecutingAssembly().GetManifestResourceStream("QuantServe.Api.Quantization.default-eval.txt")
            ?? throw new InvalidOperationException("embedded evaluation text missing");
        return new StreamReader(s).ReadToEnd();
    }

    /// <summary>Removes temporary artifacts left by a killed process.</summary>
    public void RemovePartialArtifacts()
    {
        Directory.CreateDirectory(ModelsDirectory);
        // Our own temporaries and the RTN quantizer's hidden work folders (".<name>.<guid>.tmp").
        var leftovers = Directory.EnumerateFileSystemEntries(ModelsDirectory, PartialPrefix + "*")
            .Concat(Directory.EnumerateFileSystemEntries(ModelsDirectory, "." + PartialPrefix + "*.tmp"));
        foreach (var f in leftovers.ToList())
        {
            try
            {
                if (Directory.Exists(f)) Directory.Delete(f, recursive: true); else File.Delete(f);
                _log.LogInformation("Removed leftover partial artifact {File}", f);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { _log.LogWarning("Could not remove {File}: {Problem}", f, e.Message); }
        }
    }

    /// <summary>Deletes the upload of job <paramref name="jobId"/> (if any): once a job is final its source is not needed.</summary>
    public void RemoveUpload(string jobId)
    {
        string dir = Path.Combine(_store.DataDirectory, "uploads", jobId);
        try { if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { _log.LogWarning("Could not remove {Dir}: {Problem}", dir, e.Message); }
    }

    /// <summary>Removes uploads whose job is final or unknown (a crash during an upload or after a job ended).</summary>
    public void RemoveStaleUploads()
    {
        string root = Path.Combine(_store.DataDirectory, "uploads");
        if (!Directory.Exists(root)) return;
        foreach (var dir in Directory.EnumerateDirectories(root))
        {
            string id = Path.GetFileName(dir);
            if (_store.Find(id) is { } j && !JobStatus.IsTerminal(j.Status)) continue;
            RemoveUpload(id);
        }
    }

    /// <summary>Runs <paramref name="job"/> (already marked running) to completion, failure or cancellation.</summary>
    public void Run(JobRecord job, CancellationToken cancellation)
    {
        var options = JsonSerializer.Deserialize<JobOptions>(job.OptionsJson, Json) ?? new JobOptions();
        string method = job.Method.ToLowerInvariant();
        string modelId = $"{job.Model}:{method}";
        Directory.CreateDirectory(ModelsDirectory);
        // GGUF presets write one .gguf file; QuantServe's own types write a quantized folder (renamed as a whole).
        bool rtn = QuantizationMethods.IsRtn(job.Method);
        bool gptq = QuantizationMethods.IsGptq(job.Method), awq = QuantizationMethods.IsAwq(job.Method);
        string suffix = rtn || gptq || awq ? "" : ".gguf";
        string partial = Path.Combine(ModelsDirectory, $"{PartialPrefix}{job.Id}{suffix}");
        string final = Path.Combine(ModelsDirectory, modelId + suffix);
        double baseProgress = 0;
        string stage = "load";
        var timings = new Dictionary<string, double>(StringComparer.Ordinal);
        var clock = Stopwatch.StartNew();
        void Enter(string s)
        {
            timings[stage] = Math.Round(clock.Elapsed.TotalSeconds, 3);
            clock.Restart();
            baseProgress = Weights.TakeWhile(w => w.Stage != s).Sum(w => w.Weight);
            stage = s;
            _store.Progress(job.Id, s, baseProgress);
        }
        void Report(double fraction) => _store.Progress(job.Id, stage, baseProgress + Weights.First(w => w.Stage == stage).Weight * Math.Clamp(fraction, 0, 1));

        try
        {
            Enter("load");
            string source;
            using (_telemetry.Stage(job.Id, "load", job.Model, method))
            {
                source = options.SourcePath ?? _registry.Find(job.Model)?.Path
                    ?? throw new InvalidOperationException($"model '{job.Model}' is no longer registered");
                if (QuantizationMethods.Canonical(job.Method) is null)
                    throw new InvalidOperationException($"unknown method '{job.Method}'; valid methods: {QuantizationMethods.ValidNames}");
                if (QuantizationMethods.SourceProblem(job.Method, ModelLoader.DetectFormat(source)) is { } problem)
                    throw new InvalidOperationException(problem);
            }
            using var baseModel = ModelLoader.Load(source);

            Enter("quantize");
            IReadOnlyDictionary<string, string> formats;
            ImatrixSummary? imatrix = null;
            using (_telemetry.Stage(job.Id, "quantize", job.Model, method))
            {
                if (rtn) formats = QuantizeRtn(baseModel, partial, job.Method, Report, cancellation);
                else if (awq) formats = QuantizeAwq(source, partial, job.Method, options.CalibrationText, Report, cancellation);
                else if (gptq)
                    formats = QuantizeGptq(baseModel, source, partial, job.Method, options.CalibrationText ?? DefaultEvalText, Report, Accelerator, cancellation);
                else
                {
                    // With calibration text the stage's first half computes the importance matrix, as llama-imatrix would.
                    ImportanceMatrix? matrix = null;
                    if (!string.IsNullOrEmpty(options.CalibrationText))
                        (matrix, imatrix) = JobCalibration.Compute(baseModel, options.CalibrationText, f => Report(0.5 * f), cancellation);
                    formats = QuantizeGguf(source, partial, job.Method, matrix, f => Report(matrix is null ? f : 0.5 + 0.5 * f), Accelerator, cancellation);
                }
            }
            using var quant = ModelLoader.Load(partial);

            Enter("evaluate");
            int context = Math.Clamp(options.Context ?? 256, 2, baseModel.Config.ContextLength);
            QualityMetrics quality;
            using (_telemetry.Stage(job.Id, "evaluate", job.Model, method))
                quality = ModelComparison.Evaluate(baseModel, quant, options.EvalText ?? DefaultEvalText, context,
                    options.EvalTokens ?? 1024, Report, cancellation);

            Enter("layers");
            IReadOnlyList<TensorError> layers;
            using (_telemetry.Stage(job.Id, "layers", job.Model, method))
                layers = ModelComparison.LayerErrors(baseModel, quant, cancellation);

            Enter("vram");
            var vram = VramEstimator.Estimate(quant, context, Math.Max(1, options.Batch ?? 1));

            TaskScores? task = null;
            if (options.TaskEval is { Count: > 0 } items)
            {
                Enter("task_eval");
                using (_telemetry.Stage(job.Id, "task_eval", job.Model, method))
                    task = ModelComparison.TaskEval(baseModel, quant, items, options.DegradationThreshold ?? 5, cancellation);
            }

            Enter("register");
            cancellation.ThrowIfCancellationRequested();
            timings.Remove("register");
            long size = QuantizationMethods.SizeOnDisk(partial);
            long originalSize = QuantizationMethods.SizeOnDisk(source);
            var report = new
            {
                SizeBytes = size,
                OriginalSizeBytes = originalSize,
                BitsPerWeight = 8.0 * quant.Weights.Matrices.DistinctBy(m => m.Name).Sum(m => m.ByteCount)
                    / quant.Weights.Matrices.DistinctBy(m => m.Name).Sum(m => (double)m.Rows * m.Cols),
                TensorFormats = formats,
                PerplexityBase = quality.PerplexityBase,
                Perplexity = quality.Perplexity,
                PerplexityRatio = quality.Perplexity / quality.PerplexityBase,
                KldMean = quality.KldMean,
                KldP99 = quality.KldP99,
                Top1Agreement = quality.Top1Agreement,
                TokensScored = quality.TokensScored,
                Context = quality.Context,
                Layers = layers,
                Vram = VramJson(vram),
                Task = task,
                Imatrix = imatrix,
                StageSeconds = timings,
            };
            quant.Dispose();
            Publish(partial, final);
            _registry.Register(modelId);
            _telemetry.RecordQuality(job.Model, method, quality, task?.DegradationPct);
            _telemetry.RecordVram(modelId, method, vram);
            RemoveUpload(job.Id);
            _store.Succeed(job.Id, JsonSerializer.Serialize(new { ModelId = modelId, Report = report }, Json), DateTimeOffset.UtcNow);
            _log.LogInformation("Job {Job}: {Model} quantized to {Method} as {NewModel}", job.Id, job.Model, method, modelId);
        }
        catch (Exception e) when (e is OperationCanceledException || (e is AggregateException a && a.InnerExceptions.All(i => i is OperationCanceledException)))
        {
            TryDelete(partial);
            _log.LogInformation("Job {Job} stopped during {Stage}", job.Id, stage);
            if (_store.Find(job.Id)?.Status == JobStatus.Cancelled) RemoveUpload(job.Id);
            throw new OperationCanceledException(cancellation);
        }
        catch (Exception e)
        {
            TryDelete(partial);
            RemoveUpload(job.Id);
            string reason = DiskFull(e) is { } full
                ? $"no space left on device: {stage} could not write the model to {ModelsDirectory} ({FreeBytes(ModelsDirectory)}; the partial output was removed): {full.Message}"
                : $"{stage}: {e.Message}";
            _store.Fail(job.Id, reason, DateTimeOffset.UtcNow);
            _log.LogWarning(e, "Job {Job} failed during {Stage}", job.Id, stage);
        }
    }

    private static IReadOnlyDictionary<string, string> QuantizeGguf(string source, string output, string method, ImportanceMatrix? imatrix,
        Action<double> report, GpuQuantization? accelerator, CancellationToken cancellation)
    {
        var result = GgufQuantizer.Quantize(source, output, new QuantizeOptions
        {
            Accelerator = accelerator,
            Preset = QuantizationMethods.Preset(method) ?? GgufPresets.Find(method),
            Imatrix = imatrix,
            Progress = new Reporter<QuantizeProgress>(p => report(p.Fraction)),
        }, cancellation);
        return result.Tensors.ToDictionary(t => t.Tensor.Name, t => t.Tensor.Type.ToString(), StringComparer.Ordinal);
    }

    private static IReadOnlyDictionary<string, string> QuantizeRtn(LoadedModel source, string output, string method, Action<double> report,
        CancellationToken cancellation)
    {
        var result = RtnQuantizer.Quantize(source, output, new RtnQuantizeOptions
        {
            Type = method,
            Progress = new Reporter<RtnQuantizeProgress>(p => report(p.Fraction)),
        }, cancellation);
        return result.Tensors.ToDictionary(t => t.Name, t => t.Type, StringComparer.Ordinal);
    }

    /// <summary>
    /// GPTQ into a Hugging Face GPTQ checkpoint folder. The pipeline loads its own copy of the source (it quantizes layers
    /// in place); calibration windows are 512 tokens (capped at the context), shorter when the text is short, 128 at most.
    /// </summary>
    private static IReadOnlyDictionary<string, string> QuantizeGptq(LoadedModel source, string sourcePath, string output, string method,
        string calibration, Action<double> report, GpuQuantization? accelerator, CancellationToken cancellation)
    {
        int tokens = source.Tokenizer.Encode(calibration, addBos: false).Length;
        if (tokens < 16) throw new InvalidOperationException($"the calibration text has {tokens} tokens; GPTQ needs at least 16");
        int seqLen = Math.Min(CalibrationSet.DefaultSequenceLength, tokens + 1);
        var result = GptqPipeline.Quantize(sourcePath, output, method, calibration, "calibration_text",
            CalibrationSet.DefaultSamples, seqLen, new Reporter<GptqProgress>(p => report(p.Fraction)), cancellation, accelerator);
        var c = source.Config;
        var names = new Dictionary<string, string>(StringComparer.Ordinal);
        for (int l = 0; l < c.Layers; l++)
            foreach (var linear in QuantServe.Engine.Formats.Gptq.GptqCheckpointReader.LinearLayers)
                names[$"model.layers.{l}.{linear}.weight"] = result.Type;
        return names;
    }

    /// <summary>AWQ on a second copy of the source (AWQ rewrites the model it calibrates, and the base model is evaluated
    /// against afterwards), calibrated on the job's text or, without one, the built-in evaluation slice.</summary>
    private static IReadOnlyDictionary<string, string> QuantizeAwq(string source, string output, string method, string? calibrationText,
        Action<double> report, CancellationToken cancellation)
    {
        var options = AwqTypes.Parse(method) ?? throw new InvalidOperationException($"'{method}' is not an AWQ type");
        using var model = ModelLoader.Load(source);
        var set = CalibrationSet.FromText(string.IsNullOrWhiteSpace(calibrationText) ? DefaultEvalText : calibrationText, model.Tokenizer,
            model.Config.ContextLength, source: "calibration_text");
        var result = AwqQuantizer.Quantize(model, set, output, options, progress: new Reporter<AwqProgress>(p => report(p.Fraction)),
            cancellation: cancellation);
        return result.Awq.Matrices.Keys.ToDictionary(k => k, _ => result.Layout == "awq-gemm" ? $"awq-gemm-int{options.Bits}-g{options.GroupSize}" : $"int{options.Bits}-g{options.GroupSize}-asym",
            StringComparer.Ordinal);
    }

    // Synchronous, unlike Progress<T>, so no report can land after the stage has moved on.
    private sealed class Reporter<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }

    /// <summary>Renames the finished artifact (file or folder) to its served name, replacing an earlier one.</summary>
    private static void Publish(string partial, string final)
    {
        if (File.Exists(partial))
        {
            File.Move(partial, final, overwrite: true);
            return;
        }
        if (Directory.Exists(final))
        {
            // Swap through a hidden name so a crash mid-replace leaves either the old model or a removable leftover.
            string old = Path.Combine(Path.GetDirectoryName(final)!, $"{PartialPrefix}old-{Guid.NewGuid():N}");
            Directory.Move(final, old);
            Directory.Move(partial, final);
            TryDelete(old);
            return;
        }
        if (File.Exists(final)) File.Delete(final);
        Directory.Move(partial, final);
    }

    /// <summary>The VRAM estimate as the API writes it.</summary>
    public static object VramJson(VramEstimate v) => new
    {
        WeightsBytes = v.WeightsBytes,
        KvCacheBytes = v.KvCacheBytes,
        ActivationsBytes = v.ActivationsBytes,
        OverheadBytes = v.OverheadBytes,
        TotalBytes = v.TotalBytes,
        Context = v.Context,
        Batch = v.Batch,
        KvCacheType = v.KvCacheType.ToString().ToLowerInvariant(),
        FitsGb = v.Fits,
    };

    /// <summary>The out-of-space error inside <paramref name="e"/> (ENOSPC or EDQUOT on Unix, ERROR_DISK_FULL or
    /// ERROR_HANDLE_DISK_FULL on Windows), looking through wrappers such as parallel loops' AggregateException.</summary>
    internal static IOException? DiskFull(Exception e)
    {
        const int enospc = 28, edquot = 122;
        const int diskFull = unchecked((int)0x80070070), handleDiskFull = unchecked((int)0x80070027);
        for (Exception? x = e; x is not null; x = x.InnerException)
        {
            if (x is IOException io && io.HResult is enospc or edquot or diskFull or handleDiskFull) return io;
            if (x is AggregateException a)
                foreach (var inner in a.InnerExceptions)
                    if (DiskFull(inner) is { } found) return found;
        }
        return null;
    }

    private static string FreeBytes(string directory)
    {
        try { return $"{new DriveInfo(directory).AvailableFreeSpace} bytes free after cleanup"; }
        catch (Exception e) when (e is IOException or ArgumentException or UnauthorizedAccessException) { return "free space unknown"; }
    }

    private static void TryDelete(string path)
    {
        try
        {
            if (Directory.Exists(path)) Directory.Delete(path, recursive: true);
            else File.Delete(path);
        }
        catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
