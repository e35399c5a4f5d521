using System.CommandLine;
using QuantServe.Api.Hosting;

namespace QuantServe.Api.Cli;

/// <summary>Options shared by several subcommands.</summary>
public static class CliOptions
{
    /// <summary><c>--model PATH</c>; omitted = the embedded default model.</summary>
    public static Option<string?> Model() => new("--model", "-m")
    {
        Description = "Model path: a .gguf file, a Hugging Face folder or a llama2.c checkpoint (default: the embedded stories260K)",
    };

    /// <summary>The model path to open: the given one, or the embedded default shipped beside the executable.</summary>
    public static string ResolveModel(string? path)
        => string.IsNullOrWhiteSpace(path) ? new QuantServeOptions().ResolveDefaultModelPath() : Path.GetFullPath(path);
}
