using static QuantServe.Api.Tests.TestSupport.CliRunner;
using QuantServe.Api.Cli;
using QuantServe.Api.Tests.TestSupport;
using QuantServe.Engine.Gpu.Cuda;

namespace QuantServe.Api.Tests.Cli;

/// <summary><c>quantserve gpu</c> on machines without a GPU (CI): clean one-line failures, never a crash.</summary>
public sealed class GpuCommandTests
{
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

    [Fact]
    public async Task Generate_DeviceAutoWithoutGpu_FallsBackToTheCpuTextWithOneLogLine()
    {
        if (CudaDriver.TryLoad(out _) != null) return; // on a GPU machine auto picks the GPU (checked by gpu check there)
        var cpu = await RunAsync("generate", "--model", SharedAssets.Stories260K, "-p", "Once upon a time", "-n", "20", "-t", "0");
        var auto = await RunAsync("generate", "--model", SharedAssets.Stories260K, "-p", "Once upon a time", "-n", "20", "-t", "0", "--device", "auto");
        Assert.Equal(0, auto.Exit);
        Assert.Equal(cpu.Out, auto.Out);
        Assert.StartsWith("device: cpu (no CUDA: ", auto.Err);
        Assert.Single(auto.Err.Trim().Split('\n'));
    }
}
