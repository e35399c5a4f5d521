using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using QuantServe.Engine.Evaluation;
using QuantServe.Engine.Kernels.Cpu;
using QuantServe.Engine.Models;

namespace QuantServe.Api.Cli;

/// <summary>
/// <c>quantserve eval</c>: perplexity under llama-perplexity's protocol and, with <c>--base</c>, KL divergence and top-1
/// agreement against a base model on the same windows. Running perplexity per window goes to stderr; the result to stdout
/// as a short table or, with <c>--json</c>, one JSON object.
/// </summary>
public static class EvalCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var model = CliOptions.Model();
        var text = new Option<string>("--text", "-f") { Description = "UTF-8 text file to evaluate on (tokenized whole, as llama-perplexity -f does)", Required = true };
        var ctx = new Option<int>("--ctx", "-c") { Description = "Tokens per window; the second half of each is scored", DefaultValueFactory = _ => 512 };
        var baseModel = new Option<string?>("--base") { Description = "Base model for KL divergence and top-1 agreement (same vocabulary)" };
        var json = new Option<bool>("--json") { Description = "Print one JSON object: ppl, ppl_stderr, kld_mean, kld_p99, kld_max, top1_agreement (percent), tokens, seconds" };
        var threads = new Option<int>("--threads", "-t") { Description = "Kernel threads (0 = one per core)", DefaultValueFactory = _ => 0 };
        var chunks = new Option<int>("--chunks") { Description = "Evaluate at most this many windows (0 = all)", DefaultValueFactory = _ => 0 };
        var command = new Command("eval", "Measure perplexity (llama-perplexity protocol) and, with --base, KL divergence and top-1 agreement.")
        {
            model, text, ctx, baseModel, json, threads, chunks,
        };
        command.SetAction((parse, cancellation) =>
        {
            var output = parse.InvocationConfiguration.Output;
            var error = parse.InvocationConfiguration.Error;
            if (parse.GetValue(threads) < 0) throw new ArgumentException("--threads must be >= 0");
            if (parse.GetValue(chunks) < 0) throw new ArgumentException("--chunks must be >= 0");
            string textPath = Path.GetFullPath(parse.GetValue(text)!);
            if (!File.Exists(textPath)) throw new ArgumentException($"text file not found: {textPath}");
            string content = File.ReadAllText(textPath);

            using var loaded = ModelLoader.Load(CliOptions.ResolveModel(parse.GetValue(model)));
            string? basePath = parse.GetValue(baseModel);
            using var reference = basePath is null ? null : ModelLoader.Load(Path.GetFullPath(basePath));
            using var pool = parse.GetValue(threads) > 0 ? new WorkerPool(parse.GetValue(threads)) : null;
            bool asJson = parse.GetValue(json);
            void Progress(int chunk, double value) => error.Write(string.Create(CultureInfo.InvariantCulture, $"[{chunk + 1}]{value:F4},"));

            var windows = EvaluationWindows.Create(reference ?? loaded, content, parse.GetValue(ctx), parse.GetValue(chunks));
            PerplexityResult ppl;
            KlDivergenceResult? kl = null;
            if (reference is null)
                ppl = Perplexity.Compute(loaded, windows, pool, Progress, cancellation);
            else
            {
                kl = KlDivergence.Compute(loaded, reference, windows, pool, Progress, cancellation);
                ppl = kl.Model;
            }
            error.WriteLine();

            if (asJson) WriteJson(output, ppl, kl);
            else WriteTable(output, loaded, reference, textPath, ppl, kl);
            return Task.FromResult(0);
        });
        return command;
    }

    private static void WriteJson(TextWriter output, PerplexityResult ppl, KlDivergenceResult? kl)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteNumber("ppl", ppl.Value);
            w.WriteNumber("ppl_stderr", ppl.StdErr);
            Nullable(w, "base_ppl", kl?.Base.Value);
            Nullable(w, "kld_mean", kl?.Mean);
            Nullable(w, "kld_p99", kl?.P99);
            Nullable(w, "kld_max", kl?.Max);
            Nullable(w, "top1_agreement", kl?.Top1Agreement);
            w.WriteNumber("tokens", ppl.TokensScored);
            w.WriteNumber("chunks", ppl.Chunks);
            w.WriteNumber("ctx", ppl.ContextLength);
            w.WriteNumber("seconds", kl?.Seconds ?? ppl.Seconds);
            w.WriteEndObject();
        }
        output.WriteLine(System.Text.Encoding.UTF8.GetString(stream.ToArray()));
    }

    private static void Nullable(Utf8JsonWriter w, string name, double? value)
    {
        if (value is double v) w.WriteNumber(name, v);
        else w.WriteNull(name);
    }

    private static void WriteTable(TextWriter output, LoadedModel model, LoadedModel? reference, string textPath, PerplexityResult ppl, KlDivergenceResult? kl)
    {
        var inv = CultureInfo.InvariantCulture;
        output.WriteLine($"model: {model.SourcePath} ({model.Precision})");
        if (reference != null) output.WriteLine($"base:  {reference.SourcePath} ({reference.Precision})");
        output.WriteLine(string.Create(inv, $"text:  {textPath}: {ppl.TextTokens} tokens, ctx {ppl.ContextLength}, {ppl.Chunks} chunks, {ppl.TokensScored} tokens scored, {kl?.Seconds ?? ppl.Seconds:F1} s"));
        output.WriteLine();
        output.WriteLine($"{"metric",-18} value");
        Row(output, "PPL", string.Create(inv, $"{ppl.Value:F4} ± {ppl.StdErr:F4}"));
        if (kl == null) return;
        Row(output, "base PPL", string.Create(inv, $"{kl.Base.Value:F4} ± {kl.Base.StdErr:F4}"));
        Row(output, "PPL ratio", string.Create(inv, $"{ppl.Value / kl.Base.Value:F6}"));
        Row(output, "mean KLD", string.Create(inv, $"{kl.Mean:F6} ± {kl.MeanStdErr:F6}"));
        Row(output, "99% KLD", string.Create(inv, $"{kl.P99:F6}"));
        Row(output, "max KLD", string.Create(inv, $"{kl.Max:F6}"));
        Row(output, "same top token %", string.Create(inv, $"{kl.Top1Agreement:F3} ± {kl.Top1StdErr:F3}"));
    }

    private static void Row(TextWriter output, string name, string value) => output.WriteLine($"{name,-18} {value}");
}
