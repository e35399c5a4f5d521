using System.CommandLine;
using System.Text.Json;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Kernels.Cpu;
using QuantServe.Engine.Models;

namespace QuantServe.Api.Cli;

/// <summary><c>quantserve bench</c>: llama-bench-style prompt-processing (pp) and generation (tg) tokens per second.</summary>
public static class BenchCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var model = CliOptions.Model();
        var prompt = new Option<int>("--prompt-tokens", "-p") { Description = "Prompt tokens processed in one batched forward (pp)", DefaultValueFactory = _ => 128 };
        var generate = new Option<int>("--gen-tokens", "-n") { Description = "Tokens decoded one at a time (tg)", DefaultValueFactory = _ => 64 };
        var repetitions = new Option<int>("--repetitions", "-r") { Description = "Runs per measurement (the best is kept)", DefaultValueFactory = _ => 3 };
        var threads = new Option<int>("--threads", "-t") { Description = "Kernel threads (0 = one per core)", DefaultValueFactory = _ => 0 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object (pp_tokens_per_s, tg_tokens_per_s, …) instead of text" };
        var command = new Command("bench", "Measure prompt-processing and generation speed.") { model, prompt, generate, repetitions, threads, json };
        command.SetAction(parse =>
        {
            var output = parse.InvocationConfiguration.Output;
            if (parse.GetValue(prompt) < 1 || parse.GetValue(generate) < 1 || parse.GetValue(repetitions) < 1)
                throw new ArgumentException("--prompt-tokens, --gen-tokens and --repetitions must be at least 1");
            using var loaded = ModelLoader.Load(CliOptions.ResolveModel(parse.GetValue(model)));
            using var pool = parse.GetValue(threads) > 0 ? new WorkerPool(parse.GetValue(threads)) : null;
            var result = Benchmark.Run(loaded, parse.GetValue(prompt), parse.GetValue(generate), parse.GetValue(repetitions), pool);
            if (parse.GetValue(json))
            {
                output.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object>
                {
                    ["model"] = loaded.SourcePath, ["precision"] = loaded.Precision, ["weight_bytes"] = loaded.WeightBytes,
                    ["threads"] = result.Threads, ["prompt_tokens"] = result.PromptTokens, ["gen_tokens"] = result.GenerateTokens,
                    ["pp_tokens_per_s"] = result.PromptTokensPerSecond, ["tg_tokens_per_s"] = result.GenerateTokensPerSecond,
                }));
                return 0;
            }
            output.WriteLine($"model: {loaded.SourcePath} ({loaded.Precision}, {loaded.WeightBytes:N0} bytes)");
            output.WriteLine(result.ToString());
            return 0;
        });
        return command;
    }
}
