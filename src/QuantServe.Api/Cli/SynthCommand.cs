using System.CommandLine;
using System.Diagnostics;
using QuantServe.Engine.Evaluation;
using QuantServe.Engine.Formats.Llama2c;

namespace QuantServe.Api.Cli;

/// <summary><c>quantserve synth</c>: writes a TinyLlama-1.1B-shaped F16 GGUF with random weights for speed measurements
/// (then <c>quantserve quantize</c> and <c>quantserve bench</c> it).</summary>
public static class SynthCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var output = new Option<string>("--out", "-o") { Description = "GGUF file to write", Required = true };
        var vocab = new Option<string>("--vocab") { Description = "llama2.c tokenizer file with 32000 pieces (e.g. ../shared/tokenizers/llama-32k.bin)", Required = true };
        var layers = new Option<int>("--layers") { Description = "Decoder layers (TinyLlama has 22)", DefaultValueFactory = _ => 22 };
        var seed = new Option<ulong>("--seed") { Description = "Random seed", DefaultValueFactory = _ => 1UL };
        var command = new Command("synth", "Write a TinyLlama-1.1B-shaped GGUF (F16, random weights at realistic scale) for benchmarks.") { output, vocab, layers, seed };
        command.SetAction(parse =>
        {
            var shape = SyntheticModel.TinyLlama with { Layers = parse.GetValue(layers) };
            var tokenizer = Llama2cTokenizerFile.Read(Path.GetFullPath(parse.GetValue(vocab)!), shape.VocabSize);
            string path = Path.GetFullPath(parse.GetValue(output)!);
            var clock = Stopwatch.StartNew();
            SyntheticModel.WriteGguf(path, shape, tokenizer, parse.GetValue(seed));
            parse.InvocationConfiguration.Output.WriteLine($"wrote {path}: {new FileInfo(path).Length:N0} bytes, {shape.Layers} layers, {clock.Elapsed.TotalSeconds:F1} s");
            return 0;
        });
        return command;
    }
}
