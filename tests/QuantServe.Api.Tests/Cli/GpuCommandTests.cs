using QuantServe.Api.Cli;
using QuantServe.Api.Tests.TestSupport;
using QuantServe.Engine.Gpu.Cuda;

namespace QuantServe.Api.Tests.Cli;

/// <summary><c>quantserve gpu</c> on machines without a GPU (CI): clean one-line failures, never a crash.</summary>
public sealed class GpuCommandTests
{
    private static async Task<(int Exit, string Out, string Err)> RunAsync(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int exit = await CliApp.RunAsync(args, output, error);
        return (exit, output.ToString(), error.ToString());
    }

    [Fact]
    public async Task GpuInfo_WithoutDriver_SaysSoAndExitsOne()
    {
        var (exit, output, _) = await RunAsync("gpu", "info");
        if (CudaDriver.TryLoad(out var failure) == null)
        {
            Assert.Equal(1, exit);
            Assert.Contains($"no CUDA: {failure}", output);
        }
        else
        {
            Assert.Equal(0, exit);
            Assert.Contains("CUDA driver", output);
        }
    }

    [Fact]
    public async Task GpuCheck_UnknownDevice_ExitsOneNamingTheAcceptedForms()
    {
        var (exit, _, error) = await RunAsync("gpu", "check", "--device", "vulkan:0", "-m", SharedAssets.Stories260K);
        Assert.Equal(1, exit);
        Assert.StartsWith("error: device 'vulkan:0' is not one of auto, cpu, cuda, cuda:N", error);
    }

    [Fact]
    public async Task GpuBench_NoDevice_ExitsOneWithOneLine()
    {
        if (CudaDriver.TryLoad(out _) != null) return; // a GPU machine runs the real bench instead
        var (exit, _, error) = await RunAsync("gpu", "bench", "--gemv");
        Assert.Equal(1, exit);
        Assert.Single(error.Trim().Split('\n'));
        Assert.Contains("no CUDA", error);
    }
}
