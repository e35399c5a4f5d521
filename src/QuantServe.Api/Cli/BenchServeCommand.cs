using System.CommandLine;
using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using QuantServe.Api.Serving;
using QuantServe.Api.Telemetry;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;

namespace QuantServe.Api.Cli;

/// <summary>
/// <c>quantserve bench-serve</c>: aggregate generation throughput of the server's continuous-batching scheduler with
/// N concurrent requests, against the same N requests served one at a time — the figure that shows what batching buys.
/// </summary>
public static class BenchServeCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var model = CliOptions.Model();
        var clients = new Option<int>("--clients", "-c") { Description = "Concurrent requests", DefaultValueFactory = _ => 16 };
        var tokens = new Option<int>("--max-tokens", "-n") { Description = "Tokens generated per request", DefaultValueFactory = _ => 64 };
        var prompt = new Option<string>("--prompt") { Description = "Prompt of every request", DefaultValueFactory = _ => "Once upon a time" };
        var command = new Command("bench-serve", "Measure aggregate tokens/s of continuous batching versus one request at a time.") { model, clients, tokens, prompt };
        command.SetAction(async (parse, cancel) =>
        {
            var output = parse.InvocationConfiguration.Output;
            int n = parse.GetValue(clients), max = parse.GetValue(tokens);
            if (n < 1 || max < 1) throw new ArgumentException("--clients and --max-tokens must be at least 1");
            using var loaded = ModelLoader.Load(CliOptions.ResolveModel(parse.GetValue(model)));
            int[] ids = loaded.Tokenizer.Encode(parse.GetValue(prompt)!, addBos: loaded.Tokenizer.AddBosByDefault);
            using var telemetry = new QuantServeTelemetry();
            int context = Math.Min(loaded.Config.ContextLength, ids.Length + max + 1);

            async Task<(long Tokens, double Seconds)> Run(int batch, int concurrent)
            {
                using var scheduler = new BatchScheduler(loaded, "bench", new SchedulerOptions(batch, context, n, 512, 1), telemetry, NullLogger.Instance);
                await Drain(scheduler, loaded, ids, max, seed: 0, cancel); // warm-up: JIT and caches
                var clock = Stopwatch.StartNew();
                long generated = 0;
                for (int start = 0; start < n; start += concurrent)
                {
                    var wave = Enumerable.Range(start, Math.Min(concurrent, n - start)).Select(i => Drain(scheduler, loaded, ids, max, (ulong)i + 1, cancel));
                    generated += (await Task.WhenAll(wave)).Sum();
                }
                return (generated, clock.Elapsed.TotalSeconds);
            }

            var one = await Run(batch: 1, concurrent: 1);
            var many = await Run(batch: n, concurrent: n);
            output.WriteLine($"model: {loaded.SourcePath} ({loaded.Precision}), {n} requests × {max} tokens, prompt {ids.Length} tokens");
            output.WriteLine("| mode | tokens | seconds | tokens/s |");
            output.WriteLine("|---|---:|---:|---:|");
            output.WriteLine($"| one request at a time | {one.Tokens} | {one.Seconds:F2} | {one.Tokens / one.Seconds:F1} |");
            output.WriteLine($"| {n} concurrent, continuous batching | {many.Tokens} | {many.Seconds:F2} | {many.Tokens / many.Seconds:F1} |");
            output.WriteLine($"speed-up: {many.Tokens / many.Seconds / (one.Tokens / one.Seconds):F2}x");
            return 0;
        });
        return command;
    }

    // Every request samples with its own seed and its stop tokens are banned through logit bias (as a client could do),
    // so both modes generate exactly the same number of tokens.
    private static async Task<long> Drain(BatchScheduler scheduler, LoadedModel model, int[] prompt, int maxTokens, ulong seed, CancellationToken cancel)
    {
        var banned = model.Generation.StopTokenIds.Append(model.Tokenizer.EosId).Where(t => t >= 0).Distinct().ToDictionary(t => t, _ => -100f);
        var sampling = new SamplingOptions { Temperature = 0.8f, Seed = seed, LogitBias = banned };
        var request = new GenerationRequest { Prompt = prompt, MaxTokens = maxTokens, Sampling = sampling, Cancellation = cancel };
        long count = 0;
        await foreach (var e in scheduler.Submit(request).ReadAllAsync(cancel))
            if (e is TokenGenerated) count++;
        return count;
    }
}
