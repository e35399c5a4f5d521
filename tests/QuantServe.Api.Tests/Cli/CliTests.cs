using static QuantServe.Api.Tests.TestSupport.CliRunner;
using QuantServe.Api.Cli;
using QuantServe.Api.Tests.TestSupport;

namespace QuantServe.Api.Tests.Cli;

public sealed class CliTests
{
    [Fact]
    public async Task Generate_GreedyOnEmbeddedModel_PrintsLlama2cReference()
    {
        // run.c -n 200 with a 5-token prompt (BOS + 4) generates 196 tokens and prints prompt + text + newline.
        var (exit, output, error) = await RunAsync("generate", "--prompt", "Once upon a time", "--max-tokens", "196", "--temperature", "0");
        Assert.True(exit == 0, error);
        string expected = File.ReadAllText(SharedAssets.Path("models", "stories260K", "greedy-once-upon-a-time-200.txt"));
        Assert.Equal(expected, output);
    }

    [Fact]
    public async Task Generate_SameSeedTwice_PrintsSameText()
    {
        var a = await RunAsync("generate", "--model", SharedAssets.Stories260K, "-p", "Lily", "-n", "30", "-t", "0.9", "--seed", "11", "--top-p", "0.9");
        var b = await RunAsync("generate", "--model", SharedAssets.Stories260K, "-p", "Lily", "-n", "30", "-t", "0.9", "--seed", "11", "--top-p", "0.9");
        Assert.Equal(0, a.Exit);
        Assert.StartsWith("Lily", a.Out);
        Assert.Equal(a.Out, b.Out);
    }

    [Fact]
    public async Task Info_EmbeddedModel_PrintsHyperParametersAndTensorTable()
    {
        var (exit, output, error) = await RunAsync("info");
        Assert.True(exit == 0, error);
        Assert.Contains("format:       llama2c", output);
        Assert.Contains("dim=64 hidden_dim=172 layers=5 heads=8 kv_heads=4 head_dim=8 vocab=512 context=512", output);
        Assert.Contains("parameters:   260,032", output);
        var lines = output.Split('\n');
        int header = Array.FindIndex(lines, l => l.StartsWith("name ", StringComparison.Ordinal));
        Assert.True(header > 0, "tensor table header missing");
        Assert.Matches(@"^name\s+shape\s+format\s+bytes$", lines[header].TrimEnd());
        // Embedding + 5 layers × (2 norms + 7 matrices) + final norm; the tied head is not listed twice.
        var rows = lines.Skip(header + 1).TakeWhile(l => l.Length > 0 && !l.Contains(" tensors")).ToList();
        Assert.Equal(1 + 5 * 9 + 1, rows.Count);
        Assert.Contains(rows, r => System.Text.RegularExpressions.Regex.IsMatch(r, @"\s512x64\s+F32\s+131072$"));
        Assert.Equal(260032L * 4, rows.Sum(r => long.Parse(r.Split(' ', StringSplitOptions.RemoveEmptyEntries)[^1])));
    }

    [Fact]
    public async Task Bench_EmbeddedModel_PrintsPromptAndGenerationThroughput()
    {
        var (exit, output, error) = await RunAsync("bench", "--prompt-tokens", "16", "--gen-tokens", "8", "--repetitions", "1", "--threads", "1");
        Assert.True(exit == 0, error);
        Assert.Matches(@"pp16: [0-9.]+ tok/s, tg8: [0-9.]+ tok/s \(1 threads\)", output);
    }

    [Fact]
    public async Task Bench_JsonFlag_PrintsIssueKeysWithPositiveRates()
    {
        var (exit, output, error) = await RunAsync("bench", "-p", "16", "-n", "8", "-r", "1", "-t", "1", "--json");
        Assert.True(exit == 0, error);
        using var doc = System.Text.Json.JsonDocument.Parse(output);
        Assert.True(doc.RootElement.GetProperty("pp_tokens_per_s").GetDouble() > 0);
        Assert.True(doc.RootElement.GetProperty("tg_tokens_per_s").GetDouble() > 0);
        Assert.Equal(16, doc.RootElement.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(8, doc.RootElement.GetProperty("gen_tokens").GetInt32());
    }

    [Fact]
    public async Task BenchServe_EmbeddedModel_BothModesGenerateEveryTokenAndReportThroughput()
    {
        var (exit, output, error) = await RunAsync("bench-serve", "--clients", "4", "--max-tokens", "8");
        Assert.True(exit == 0, error);
        Assert.Matches(@"\| one request at a time \| 32 \| [0-9.]+ \| [0-9.]+ \|", output);
        Assert.Matches(@"\| 4 concurrent, continuous batching \| 32 \| [0-9.]+ \| [0-9.]+ \|", output);
        Assert.Matches(@"speed-up: [0-9.]+x", output);
    }

    [Fact]
    public async Task Info_MissingModel_ReportsFileAndExits2()
    {
        var (exit, output, error) = await RunAsync("info", "--model", "/nonexistent/model.gguf");
        Assert.Equal(2, exit);
        Assert.Contains("/nonexistent/model.gguf", error);
        Assert.Equal("", output);
    }

    [Theory]
    [InlineData(new string[0], false)]
    [InlineData(new[] { "serve" }, false)]
    [InlineData(new[] { "--urls", "http://127.0.0.1:5000" }, false)]
    [InlineData(new[] { "info" }, true)]
    [InlineData(new[] { "generate", "-p", "x" }, true)]
    [InlineData(new[] { "--help" }, true)]
    public void IsSubcommand_Args_SelectsCliOrServer(string[] args, bool cli)
    {
        Assert.Equal(cli, CliApp.IsSubcommand(args));
        if (!cli) Assert.DoesNotContain("serve", CliApp.ServerArgs(args));
    }
}
