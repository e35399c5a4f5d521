using QuantServe.Api.Cli;

namespace QuantServe.Api.Tests.TestSupport;

/// <summary>Runs <c>quantserve</c> commands in-process with captured output, as the CLI tests need.</summary>
public static class CliRunner
{
    /// <summary>The exit code and what the command wrote to standard output and standard error.</summary>
    public static async Task<(int Exit, string Out, string Err)> RunAsync(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int exit = await CliApp.RunAsync(args, output, error);
        return (exit, output.ToString(), error.ToString());
    }
}
