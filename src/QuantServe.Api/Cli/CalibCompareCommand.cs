using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using QuantServe.Engine.Evaluation;
using QuantServe.Engine.Models;
using QuantServe.Engine.Quantization.Calibration;
using QuantServe.Engine.Quantization.Gguf;
using QuantServe.Engine.Quantization.Methods;
using QuantServe.Engine.Quantization.Presets;
using QuantServe.Engine.Quantization.Rtn;

namespace QuantServe.Api.Cli;

/// <summary>
/// <c>quantserve calib-compare</c>: the calibration-methods table. Each row quantizes the model one way into a temporary
/// folder, loads the result and measures perplexity and KL divergence against the unquantized model on the evaluation
/// text (llama-perplexity's protocol, as <c>quantserve eval --base</c>): RTN <c>int4-g128</c>/<c>int3-g128</c> (the
/// types as <c>quantize</c> writes them, int8 embedding), GPTQ with and without act-order and AWQ at both widths, Q4_K_M without
/// and with an importance matrix from the same calibration text, and llama.cpp's Q4_K_M figures parsed from the reference
/// file. Rows print as they finish (stderr) and the table at the end (markdown, or <c>--json</c>).
/// </summary>
public static class CalibCompareCommand
{
    /// <summary>One way of producing a quantized model: <c>Produce(model, calibration text, work folder)</c> returns its path.</summary>
    public sealed record Row(string Method, string Type, Func<RowContext, string> Produce);

    /// <summary>What a row's producer gets.</summary>
    public sealed record RowContext(string ModelPath, string CalibrationPath, string CalibrationText, int Samples, int SequenceLength,
        string WorkDir, CancellationToken Cancellation);

    /// <summary>A measured row.</summary>
    public sealed record Result(string Method, string Type, double Ppl, double PplStdErr, double? KldMean, double? Top1,
        double? BitsPerWeight, double Seconds, string Note);

    /// <summary>
    /// The rows, in table order: at each width RTN, GPTQ, GPTQ act-order and AWQ.
    /// </summary>
    public static List<Row> Rows() =>
    [
        RtnRow("int4-g128"),
        GptqRow("gptq-int4-g128"),
        GptqRow("gptq-int4-g128-act"),
        GptqRow("gptq-int4-g128-asym"),
        GptqRow("gptq-int4-g128-act-asym"),
        AwqRow("awq-int4-g128"),
        RtnRow("int3-g128"),
        GptqRow("gptq-int3-g128"),
        GptqRow("gptq-int3-g128-act"),
        AwqRow("awq-int3-g128"),
        new("GGUF", "Q4_K_M", c => Gguf(c, imatrix: false)),
        new("GGUF + imatrix", "Q4_K_M", c => Gguf(c, imatrix: true)),
    ];

    /// <summary>QuantServe's round-to-nearest type, as <c>quantize --type</c> writes it.</summary>
    public static Row RtnRow(string type) => new("RTN", type, c =>
    {
        string output = Path.Combine(c.WorkDir, type);
        RtnQuantizer.Quantize(c.ModelPath, output, new RtnQuantizeOptions { Type = type }, c.Cancellation);
        return output;
    });

    /// <summary>GPTQ of <paramref name="type"/> into a Hugging Face GPTQ checkpoint.</summary>
    public static Row GptqRow(string type) => new(type.Contains("-act", StringComparison.Ordinal) ? "GPTQ act-order" : "GPTQ", type, c =>
    {
        string output = Path.Combine(c.WorkDir, type);
        GptqPipeline.Quantize(c.ModelPath, output, type, c.CalibrationText, c.CalibrationPath, c.Samples, c.SequenceLength, null, c.Cancellation);
        return output;
    });

    /// <summary>AWQ of <paramref name="type"/> (4-bit: AutoAWQ's GEMM layout; 3-bit: a quantized folder), F16 embedding/head as GPTQ.</summary>
    public static Row AwqRow(string type) => new("AWQ", type, c =>
    {
        var options = AwqTypes.Parse(type) ?? throw new ArgumentException($"'{type}' is not an AWQ type");
        string output = Path.Combine(c.WorkDir, type);
        using var model = ModelLoader.Load(c.ModelPath);
        var set = CalibrationSet.FromText(c.CalibrationText, model.Tokenizer, model.Config.ContextLength, c.Samples, c.SequenceLength, c.CalibrationPath);
        AwqQuantizer.Quantize(model, set, output, options, "F16", null, c.Cancellation);
        return output;
    });

    private static string Gguf(RowContext c, bool imatrix)
    {
        ImportanceMatrix? im = null;
        if (imatrix)
        {
            using var model = ModelLoader.Load(c.ModelPath);
            var set = CalibrationSet.FromText(c.CalibrationText, model.Tokenizer, model.Config.ContextLength, c.Samples, c.SequenceLength, c.CalibrationPath);
            im = CalibrationRunner.CollectImportance(model, set, null, c.Cancellation).ToImportanceMatrix(c.CalibrationPath);
        }
        string output = Path.Combine(c.WorkDir, imatrix ? "q4_k_m-imatrix.gguf" : "q4_k_m.gguf");
        GgufQuantizer.Quantize(c.ModelPath, output, new QuantizeOptions { Preset = GgufPresets.Find("Q4_K_M"), Imatrix = im }, c.Cancellation);
        return output;
    }

    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var model = new Option<string>("--model", "-m") { Description = "Hugging Face model folder (F16/F32)", Required = true };
        var calibration = new Option<string>("--calibration", "-f") { Description = "Calibration text (plain or JSONL)", Required = true };
        var text = new Option<string>("--text") { Description = "Evaluation text", Required = true };
        var ctx = new Option<int>("--ctx", "-c") { Description = "Evaluation window (tokens)", DefaultValueFactory = _ => 256 };
        var samples = new Option<int>("--samples", "-n") { Description = "Calibration windows", DefaultValueFactory = _ => CalibrationSet.DefaultSamples };
        var seqLen = new Option<int>("--seq-len") { Description = "Calibration window length (capped at the context)", DefaultValueFactory = _ => CalibrationSet.DefaultSequenceLength };
        var reference = new Option<string?>("--reference") { Description = "llama.cpp reference file (default: llama-cpp-reference.md in a prose-15m-gguf folder beside the model)" };
        var only = new Option<string[]>("--only") { Description = "Run only rows whose type is one of these (repeatable)" };
        var json = new Option<bool>("--json") { Description = "Print JSON instead of the markdown table" };
        var command = new Command("calib-compare", "Quantize one model with RTN, GPTQ (± act-order), AWQ, and Q4_K_M ± imatrix, evaluate each (PPL, KLD vs the original) and print the comparison table.")
        {
            model, calibration, text, ctx, samples, seqLen, reference, only, json,
        };
        command.SetAction(async (parse, cancellation) =>
        {
            var stdout = parse.InvocationConfiguration.Output;
            var stderr = parse.InvocationConfiguration.Error;
            string modelPath = Path.GetFullPath(parse.GetValue(model)!);
            string calibPath = Path.GetFullPath(parse.GetValue(calibration)!);
            string textPath = Path.GetFullPath(parse.GetValue(text)!);
            if (!File.Exists(textPath)) throw new ArgumentException($"text file not found: {textPath}");
            int context = parse.GetValue(ctx);
            if (parse.GetValue(samples) <= 0) throw new ArgumentException("--samples must be positive");
            string calibText = CalibrationSet.ReadText(calibPath);
            string evalText = File.ReadAllText(textPath);
            var filter = parse.GetValue(only) ?? [];
            var rows = Rows().Where(r => filter.Length == 0 || filter.Contains(r.Type, StringComparer.OrdinalIgnoreCase)).ToList();
            string work = Path.Combine(Path.GetTempPath(), "quantserve-calib-compare-" + Guid.NewGuid().ToString("N"));
            Directory.CreateDirectory(work);
            var results = new List<Result>();
            try
            {
                using var baseModel = ModelLoader.Load(modelPath);
                var windows = EvaluationWindows.Create(baseModel, evalText, context);
                // The original's own row only in a full run (its perplexity is also every KLD row's base perplexity).
                if (filter.Length == 0)
                {
                    var basePpl = Perplexity.Compute(baseModel, windows, null, null, cancellation);
                    results.Add(new Result("none", baseModel.Precision, basePpl.Value, basePpl.StdErr, null, null, Bits(baseModel), basePpl.Seconds, "the original"));
                    stderr.WriteLine(string.Create(CultureInfo.InvariantCulture, $"original: PPL {basePpl.Value:F4}"));
                }
                var ctxRow = new RowContext(modelPath, calibPath, calibText, parse.GetValue(samples), parse.GetValue(seqLen), work, cancellation);
                foreach (var row in rows)
                {
                    var sw = Stopwatch.StartNew();
                    string produced = await Task.Run(() => row.Produce(ctxRow), cancellation);
                    double seconds = sw.Elapsed.TotalSeconds;
                    using var quant = ModelLoader.Load(produced);
                    var kl = KlDivergence.Compute(quant, baseModel, windows, null, null, cancellation);
                    var r = new Result(row.Method, row.Type, kl.Model.Value, kl.Model.StdErr, kl.Mean, kl.Top1Agreement, Bits(quant), seconds,
                        row.Method.StartsWith("GPTQ", StringComparison.Ordinal) || row.Method == "AWQ" ? "F16 embedding/head" : row.Method == "RTN" ? "int8 embedding/head" : "");
                    results.Add(r);
                    stderr.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"{r.Method} {r.Type}: PPL {r.Ppl:F4} ± {r.PplStdErr:F4}, KLD {r.KldMean:F6}, quantized in {r.Seconds:F1} s"));
                }
            }
            finally
            {
                try { Directory.Delete(work, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            }
            string refPath = parse.GetValue(reference)
                ?? Path.Combine(Path.GetDirectoryName(modelPath.TrimEnd('/'))!, "prose-15m-gguf", "llama-cpp-reference.md");
            if (File.Exists(refPath) && LlamaCppRow(refPath, "Q4_K_M") is { } lc && filter.Length == 0) results.Add(lc);
            if (parse.GetValue(json))
                stdout.WriteLine(JsonSerializer.Serialize(results, new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower }));
            else WriteTable(stdout, results, Path.GetFileName(calibPath), Path.GetFileName(textPath), context);
            return 0;
        });
        return command;
    }

    /// <summary>Stored bits per weight of the block matrices (the embedding and head excluded).</summary>
    private static double? Bits(LoadedModel m)
    {
        var ms = m.Weights.Layers.SelectMany(l => new[] { l.Wq, l.Wk, l.Wv, l.Wo, l.Gate, l.Up, l.Down }).ToList();
        double weights = ms.Sum(x => (double)x.Rows * x.Cols);
        return weights > 0 ? 8.0 * ms.Sum(x => x.ByteCount) / weights : null;
    }

    /// <summary>llama.cpp's row for <paramref name="type"/> from the reference file's quality table (PPL, mean KLD, top token %).</summary>
    public static Result? LlamaCppRow(string path, string type)
    {
        foreach (var line in File.ReadLines(path))
        {
            var cells = line.Split('|', StringSplitOptions.TrimEntries);
            if (cells.Length < 11 || cells[1] != type) continue;
            var inv = CultureInfo.InvariantCulture;
            if (!double.TryParse(cells[5], inv, out double ppl) || !double.TryParse(cells[7], inv, out double kld)
                || !double.TryParse(cells[10], inv, out double top)) continue;
            double.TryParse(cells[3], inv, out double bpw);
            return new Result("llama.cpp (reference file)", type, ppl, 0, kld, top, bpw, 0,
                "llama-perplexity on bible+pydoc, whole-file bits/weight; not comparable row by row");
        }
        return null;
    }

    private static void WriteTable(TextWriter o, List<Result> results, string calibration, string text, int ctx)
    {
        var inv = CultureInfo.InvariantCulture;
        o.WriteLine($"Calibration: {calibration}; evaluation: {text}, ctx {ctx} (second half of each window scored); KLD against the original model.");
        o.WriteLine();
        o.WriteLine("| method | type | PPL | mean KLD | same top token % | bits/weight (blocks) | quantize s | note |");
        o.WriteLine("|---|---|---:|---:|---:|---:|---:|---|");
        foreach (var r in results)
            o.WriteLine(string.Create(inv,
                $"| {r.Method} | {r.Type} | {r.Ppl:F4} ± {r.PplStdErr:F4} | {(r.KldMean is { } k ? k.ToString("F6", inv) : "")} | {(r.Top1 is { } t ? t.ToString("F3", inv) : "")} | {(r.BitsPerWeight is { } b ? b.ToString("F2", inv) : "")} | {r.Seconds:F1} | {r.Note} |"));
    }
}
