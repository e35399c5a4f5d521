using System.CommandLine;
using QuantServe.Engine.Models;

namespace QuantServe.Api.Cli;

/// <summary>
/// The <c>quantserve</c> command line. A first argument naming a subcommand (or asking for help) runs that command;
/// anything else — no arguments, <c>serve</c>, or configuration switches such as <c>--urls</c> — starts the server.
/// </summary>
public static class CliApp
{
    private static readonly string[] HelpSwitches = ["-h", "--help", "-?", "--version"];

    /// <summary>Builds the command tree; one file per subcommand in this folder.</summary>
    public static RootCommand Build()
    {
        var root = new RootCommand("QuantServe: load, quantize, evaluate and serve Llama-family models. Without a subcommand it serves the OpenAI-compatible API (ASP.NET configuration switches such as --urls apply).")
        {
            InfoCommand.Create(),
            GenerateCommand.Create(),
            HealthcheckCommand.Create(),
            BenchCommand.Create(),
            BenchServeCommand.Create(),
            LoadTestCommand.Create(),
            QuantizeCommand.Create(),
            EvalCommand.Create(),
            ImatrixCommand.Create(),
            CalibCompareCommand.Create(),
            SynthCommand.Create(),
            GpuCommand.Create(),
            GpuQuantCommand.Create(),
        };
        return root;
    }

    /// <summary>Whether <paramref name="args"/> select a subcommand rather than the server.</summary>
    public static bool IsSubcommand(string[] args)
    {
        if (args.Length == 0) return false;
        if (HelpSwitches.Contains(args[0])) return true;
        return Build().Subcommands.Any(c => c.Name == args[0]);
    }

    /// <summary>The server's arguments: everything but a leading <c>serve</c>.</summary>
    public static string[] ServerArgs(string[] args) => args.Length > 0 && args[0] == "serve" ? args[1..] : args;

    /// <summary>Runs a subcommand, writing to <paramref name="output"/>/<paramref name="error"/> (console by default).
    /// Model errors are reported as one line, exit code 2; other failures exit with 1.</summary>
    public static async Task<int> RunAsync(string[] args, TextWriter? output = null, TextWriter? error = null, CancellationToken cancellation = default)
    {
        var config = new InvocationConfiguration
        {
            Output = output ?? Console.Out,
            Error = error ?? Console.Error,
            EnableDefaultExceptionHandler = false,
        };
        try
        {
            return await Build().Parse(args).InvokeAsync(config, cancellation);
        }
        catch (ModelLoadException e)
        {
            await config.Error.WriteLineAsync($"error: {e.Message}");
            return 2;
        }
        catch (OperationCanceledException)
        {
            return 130;
        }
        catch (Exception e)
        {
            // A command line tool reports the problem in one line instead of a stack trace.
            await config.Error.WriteLineAsync($"error: {e.Message}");
            return 1;
        }
    }
}
