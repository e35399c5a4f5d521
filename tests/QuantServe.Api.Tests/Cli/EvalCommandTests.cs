using static QuantServe.Api.Tests.TestSupport.CliRunner;
using System.Text.Json;
using QuantServe.Api.Cli;
using QuantServe.Api.Tests.TestSupport;

namespace QuantServe.Api.Tests.Cli;

public sealed class EvalCommandTests
{
    private static string Samples => SharedAssets.Path("eval", "stories260k-samples.txt");

    [Fact]
    public async Task Eval_JsonAgainstItself_PrintsPerplexityAndZeroKl()
    {
        var (exit, output, error) = await RunAsync("eval", "--model", SharedAssets.Stories260K, "--base", SharedAssets.Stories260K,
            "--text", Samples, "--ctx", "64", "--chunks", "3", "--json", "--threads", "1");
        Assert.True(exit == 0, error);
        using var doc = JsonDocument.Parse(output);
        var root = doc.RootElement;
        double ppl = root.GetProperty("ppl").GetDouble();
        Assert.InRange(ppl, 1.5, 100);
        Assert.True(root.GetProperty("ppl_stderr").GetDouble() > 0);
        Assert.Equal(ppl, root.GetProperty("base_ppl").GetDouble());
        Assert.Equal(0, root.GetProperty("kld_mean").GetDouble());
        Assert.Equal(0, root.GetProperty("kld_p99").GetDouble());
        Assert.Equal(0, root.GetProperty("kld_max").GetDouble());
        Assert.Equal(100, root.GetProperty("top1_agreement").GetDouble());
        Assert.Equal(3 * 31, root.GetProperty("tokens").GetInt32());
        Assert.True(root.GetProperty("seconds").GetDouble() > 0);
        Assert.StartsWith("[1]", error);
    }

    [Fact]
    public async Task Eval_TableWithoutBase_PrintsPerplexityRowMatchingJson()
    {
        string[] args = ["eval", "--model", SharedAssets.Stories260K, "--text", Samples, "--ctx", "64", "--chunks", "2"];
        var table = await RunAsync(args);
        var json = await RunAsync([.. args, "--json"]);
        Assert.True(table.Exit == 0, table.Err);
        Assert.True(json.Exit == 0, json.Err);
        using var doc = JsonDocument.Parse(json.Out);
        Assert.Equal(JsonValueKind.Null, doc.RootElement.GetProperty("kld_mean").ValueKind);
        double ppl = doc.RootElement.GetProperty("ppl").GetDouble();
        Assert.Contains("ctx 64, 2 chunks, 62 tokens scored", table.Out);
        Assert.Matches($@"\nPPL\s+{ppl:F4} ± [0-9.]+\n", table.Out.ReplaceLineEndings("\n"));
        Assert.DoesNotContain("KLD", table.Out);
    }

    [Fact]
    public async Task Eval_MissingTextFile_ReportsPathAndExits1()
    {
        var (exit, output, error) = await RunAsync("eval", "--model", SharedAssets.Stories260K, "--text", "/nonexistent/eval.txt", "--ctx", "64");
        Assert.Equal(1, exit);
        Assert.Contains("/nonexistent/eval.txt", error);
        Assert.Equal("", output);
    }

    [Fact]
    public async Task Eval_ContextBeyondModel_ReportsLimitAndExits1()
    {
        var (exit, _, error) = await RunAsync("eval", "--model", SharedAssets.Stories260K, "--text", Samples, "--ctx", "4096");
        Assert.Equal(1, exit);
        Assert.Contains("exceeds the model's context length of 512", error);
    }
}
