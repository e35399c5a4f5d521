using QuantServe.Engine.Gpu;
using QuantServe.Engine.Gpu.Cuda;

namespace QuantServe.Engine.Tests.Gpu;

public class DeviceSelectionTests
{
    [Theory]
    [InlineData(null, DeviceKind.Auto, 0)]
    [InlineData("", DeviceKind.Auto, 0)]
    [InlineData("auto", DeviceKind.Auto, 0)]
    [InlineData("CPU", DeviceKind.Cpu, 0)]
    [InlineData("cuda", DeviceKind.Cuda, 0)]
    [InlineData(" cuda:3 ", DeviceKind.Cuda, 3)]
    public void Parse_AcceptedForms_GiveKindAndOrdinal(string? text, DeviceKind kind, int ordinal)
    {
        var s = DeviceSelection.Parse(text);
        Assert.Equal(kind, s.Kind);
        Assert.Equal(ordinal, s.Ordinal);
    }

    [Theory]
    [InlineData("cuda:")]
    [InlineData("cuda:-1")]
    [InlineData("cuda:x")]
    [InlineData("vulkan")]
    [InlineData("cuda:99999")]
    public void Parse_OtherText_ThrowsNamingTheAcceptedForms(string text)
    {
        var e = Assert.Throws<FormatException>(() => DeviceSelection.Parse(text));
        Assert.Contains("auto, cpu, cuda, cuda:N", e.Message);
        Assert.Contains(text, e.Message);
    }

    [Fact]
    public void ToString_Cuda_RoundTripsThroughParse()
    {
        Assert.Equal("cuda:2", DeviceSelection.Parse("cuda:2").ToString());
        Assert.Equal(DeviceSelection.Parse("cuda:2"), DeviceSelection.Parse(DeviceSelection.Parse("cuda:2").ToString()));
    }

    [Fact]
    public void Select_Cpu_ReturnsNoBackendAndLogsCpu()
    {
        var lines = new List<string>();
        Assert.Null(CudaBackend.Select(DeviceSelection.Parse("cpu"), lines.Add));
        Assert.Equal(["device: cpu (QuantServe:Device=cpu)"], lines);
    }

    [Fact]
    public void Select_Auto_UsesCudaWhenPresentElseFallsBackWithOneLogLine()
    {
        var lines = new List<string>();
        using var backend = CudaBackend.Select(DeviceSelection.Auto, lines.Add);
        Assert.Single(lines);
        if (CudaDriver.TryLoad(out var failure) == null)
        {
            Assert.Null(backend);
            Assert.Equal($"device: cpu (no CUDA: {failure})", lines[0]);
            Assert.Contains("libcuda.so.1", lines[0]);
        }
        else Assert.StartsWith(backend != null ? "device: cuda:0" : "device: cpu", lines[0]);
    }

    [Fact]
    public void Open_WithoutDriverOrBeyondTheDeviceCount_ThrowsCudaExceptionSayingWhy()
    {
        var e = Assert.Throws<CudaException>(() => CudaBackend.Open(1000));
        Assert.True(e.Message.Contains("no CUDA driver") || e.Message.Contains("cuda:1000 does not exist"), e.Message);
    }

    [Fact]
    public void DriverCheck_ErrorCode_NamesTheCallAndCode()
    {
        var driver = CudaDriver.TryLoad(out _);
        if (driver == null)
        {
            var e = new CudaException("cuMemAlloc", 2, "CUDA_ERROR_OUT_OF_MEMORY", "4096 bytes");
            Assert.Equal("cuMemAlloc failed with CUDA_ERROR_OUT_OF_MEMORY (2): 4096 bytes", e.Message);
            return;
        }
        var thrown = Assert.Throws<CudaException>(() => driver.Check(2, "cuMemAlloc", "4096 bytes"));
        Assert.StartsWith("cuMemAlloc failed with CUDA_ERROR_OUT_OF_MEMORY (2)", thrown.Message);
    }
}
