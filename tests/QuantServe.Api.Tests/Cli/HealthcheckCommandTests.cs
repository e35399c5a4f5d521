using QuantServe.Api.Cli;
using QuantServe.Api.Tests.TestSupport;

namespace QuantServe.Api.Tests.Cli;

public sealed class HealthcheckCommandTests(KestrelServer server) : IClassFixture<KestrelServer>
{
    private static async Task<(int Exit, string Out)> RunAsync(params string[] args)
    {
        var (exit, output, error) = await CliRunner.RunAsync(args);
        return (exit, output + error);
    }

    [Fact]
    public async Task Healthcheck_ReadyServer_ExitsZero()
    {
        var (exit, output) = await RunAsync("healthcheck", "--url", new Uri(server.BaseAddress, "/health/ready").ToString());
        Assert.True(exit == 0, output);
        Assert.StartsWith("200", output);
    }

    [Fact]
    public async Task Healthcheck_MissingEndpointOrNoServer_ExitsOne()
    {
        Assert.Equal(1, (await RunAsync("healthcheck", "--url", new Uri(server.BaseAddress, "/health/nothing").ToString())).Exit);
        Assert.Equal(1, (await RunAsync("healthcheck", "--url", "http://127.0.0.1:1/health/ready", "--timeout", "2")).Exit);
    }
}
