using System.CommandLine;
using QuantServe.Engine.Gpu;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;

namespace QuantServe.Api.Cli;

/// <summary><c>quantserve generate</c>: streams a continuation of a prompt to stdout with the engine's generator.</summary>
public static class GenerateCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var model = CliOptions.Model();
        var prompt = new Option<string>("--prompt", "-p") { Description = "Prompt text", Required = true };
        var maxTokens = new Option<int>("--max-tokens", "-n") { Description = "Tokens to generate at most", DefaultValueFactory = _ => 256 };
        var temperature = new Option<float>("--temperature", "-t") { Description = "Sampling temperature; 0 = greedy", DefaultValueFactory = _ => 1f };
        var seed = new Option<ulong?>("--seed", "-s") { Description = "Random seed (same seed, same text)" };
        var topK = new Option<int>("--top-k") { Description = "Keep the k most likely tokens (0 = all)", DefaultValueFactory = _ => 0 };
        var topP = new Option<float>("--top-p") { Description = "Nucleus probability (1 = all)", DefaultValueFactory = _ => 1f };
        var device = new Option<string>("--device") { Description = "cpu, auto or cuda:N (on the GPU: greedy at temperature 0, else top-k 1..64; --top-k 0 means 40 there)", DefaultValueFactory = _ => "cpu" };
        var command = new Command("generate", "Generate text from a prompt, streaming it to stdout.")
        {
            model, prompt, maxTokens, temperature, seed, topK, topP, device,
        };
        command.SetAction(async (parse, cancellation) =>
        {
            var output = parse.InvocationConfiguration.Output;
            if (parse.GetValue(maxTokens) < 0) throw new ArgumentException("--max-tokens must be >= 0");
            using var loaded = ModelLoader.Load(CliOptions.ResolveModel(parse.GetValue(model)));
            var selection = DeviceSelection.Parse(parse.GetValue(device));
            if (selection.Kind != DeviceKind.Cpu)
            {
                using var backend = CudaBackend.Select(selection, parse.InvocationConfiguration.Error.WriteLine);
                if (backend != null)
                {
                    if (parse.GetValue(topP) < 1f) throw new ArgumentException("--top-p is not supported on the GPU; use --top-k 1..64");
                    using var gpu = backend.Load(loaded, 256);
                    var tok = loaded.Tokenizer;
                    string prefix = parse.GetValue(prompt)!;
                    await output.WriteAsync(prefix);
                    float temp = parse.GetValue(temperature);
                    int k = parse.GetValue(topK) == 0 ? 40 : parse.GetValue(topK);
                    foreach (var (_, piece) in new DeviceTextGenerator(gpu, tok).Generate(tok.Encode(prefix, addBos: tok.AddBosByDefault),
                        parse.GetValue(maxTokens), temp, k, parse.GetValue(seed) ?? (ulong)Environment.TickCount64, null, cancellation))
                    {
                        await output.WriteAsync(piece);
                        await output.FlushAsync(cancellation);
                    }
                    await output.WriteLineAsync();
                    return 0;
                }
            }
            var generator = new TextGenerator(loaded);
            var options = new GenerationOptions
            {
                MaxTokens = parse.GetValue(maxTokens),
                Sampling = new SamplingOptions
                {
                    Temperature = parse.GetValue(temperature),
                    Seed = parse.GetValue(seed),
                    TopK = parse.GetValue(topK),
                    TopP = parse.GetValue(topP),
                },
            };
            options.Sampling.Validate(loaded.Config.VocabSize);
            string text = parse.GetValue(prompt)!;
            // The prompt is echoed first, as llama2.c's run does, so the output reads as one text.
            await output.WriteAsync(text);
            await foreach (var token in generator.GenerateAsync(generator.EncodePrompt(text, options), options, cancellation))
            {
                await output.WriteAsync(token.Text);
                await output.FlushAsync(cancellation);
            }
            await output.WriteLineAsync();
            return 0;
        });
        return command;
    }
}
