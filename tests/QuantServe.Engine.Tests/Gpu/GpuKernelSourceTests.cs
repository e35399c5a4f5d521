using System.Text.RegularExpressions;
using QuantServe.Engine.Gpu;
using QuantServe.Engine.Gpu.Cuda;
using QuantServe.Engine.Quantization.Formats;
using QuantServe.Engine.Tensors;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Gpu;

public class GpuKernelSourceTests
{
    private static HashSet<string> KernelNames()
    {
        var src = GpuKernels.Source();
        var names = Regex.Matches(src, @"extern ""C"" __global__ void (?:__launch_bounds__\(\d+\) )?(\w+)\(").Select(m => m.Groups[1].Value).ToHashSet();
        foreach (Match m in Regex.Matches(src, @"^DEFINE_GEMV\((\w+),", RegexOptions.Multiline))
            foreach (var nb in new[] { 1, 4, 16 }) names.Add($"{m.Groups[1].Value}_{nb}");
        foreach (Match m in Regex.Matches(src, @"^DEFINE_GEMVQ\((\w+),", RegexOptions.Multiline))
            foreach (var nb in new[] { 1, 4, 16 })
            {
                names.Add($"{m.Groups[1].Value}_{nb}");
                names.Add($"{m.Groups[1].Value}_glu_{nb}");
            }
        return names;
    }

    [Fact]
    public void Source_EmbeddedFiles_DefineEveryKernelTheLauncherLoads()
    {
        var names = KernelNames();
        foreach (GpuKernelKind kind in Enum.GetValues<GpuKernelKind>())
        {
            string stem = kind == GpuKernelKind.Codebook ? "nf4" : kind.ToString().ToLowerInvariant();
            foreach (var nb in new[] { 1, 4, 16 }) Assert.Contains($"gemv_{stem}_{nb}", names);
        }
        foreach (var kind in GpuKernels.IntegerDotKinds)
            foreach (var nb in new[] { 1, 4, 16 })
            {
                Assert.Contains($"gemvq_{GpuKernels.GemvName(kind)}_{nb}", names);
                Assert.Contains($"gemvq_{GpuKernels.GemvName(kind)}_glu_{nb}", names);
            }
        foreach (var k in new[] { "quantize_q8", "rmsnorm_q8", "embed", "rmsnorm", "add_bias", "swiglu", "rope_store", "attention", "attention_split",
                     "attention_combine", "argmax_rows", "topk_sample" })
            Assert.Contains(k, names);
    }

    [Theory]
    [InlineData("F32", GpuKernelKind.F32)]
    [InlineData("F16", GpuKernelKind.F16)]
    [InlineData("Q8_0", GpuKernelKind.Q8_0)]
    [InlineData("Q4_0", GpuKernelKind.Q4_0)]
    [InlineData("Q4_K", GpuKernelKind.Q4_K)]
    [InlineData("Q5_K", GpuKernelKind.Q5_K)]
    [InlineData("Q6_K", GpuKernelKind.Q6_K)]
    [InlineData("int4-g128", GpuKernelKind.Int4)]
    [InlineData("int4-g64-asym", GpuKernelKind.Int4)]
    [InlineData("int4", GpuKernelKind.Int4)]
    [InlineData("int8", GpuKernelKind.Int8)]
    [InlineData("int8-g16", GpuKernelKind.Int8)]
    [InlineData("nf4", GpuKernelKind.Codebook)]
    [InlineData("nf4-dq", GpuKernelKind.Codebook)]
    [InlineData("fp4", GpuKernelKind.Codebook)]
    public void KernelFor_FormatsWithAKernel_PickIt(string format, GpuKernelKind kind)
        => Assert.Equal(kind, GpuMatrix.KernelFor(TensorFormats.ForName(format)!, 4096));

    [Theory]
    [InlineData("Q4_1")]
    [InlineData("Q5_0")]
    [InlineData("Q2_K")]
    [InlineData("int3-g128")]
    [InlineData("int4-g48")]
    [InlineData("llm-int8")]
    public void KernelFor_FormatsWithoutAKernel_AreDequantizedToF16(string format)
        => Assert.Null(GpuMatrix.KernelFor(TensorFormats.ForName(format)!, 4096));

    [GpuFact]
    public void Compile_EmbeddedSource_ProducesACubinForTheDevice()
    {
        var nvrtc = Nvrtc.TryLoad(out _)!;
        using var device = CudaDevice.Open(0);
        var cubin = nvrtc.CompileUncached(GpuKernels.Source(), "test.cu", device.Info.Arch, GpuKernels.CompileOptions);
        Assert.True(cubin.Length > 10_000);
        device.LoadModule(cubin);
        Assert.NotEqual(0, device.Function("gemvq_q4_k_1"));
    }

    /// <summary>NVRTC needs no GPU: where the library is installed (apt's libnvrtc11.2 on a dev box) every kernel
    /// is compiled for Hopper and Ampere, so a syntax error is caught before a device call.</summary>
    [Theory]
    [InlineData("sm_90")]
    [InlineData("sm_80")]
    public void Compile_EmbeddedSourceWithoutADevice_ProducesACubinOrNvrtcIsAbsent(string arch)
    {
        var nvrtc = Nvrtc.TryLoad(out var failure);
        if (nvrtc == null)
        {
            Assert.Contains("libnvrtc", failure);
            return;
        }
        var cubin = nvrtc.CompileUncached(GpuKernels.Source(), "test.cu", arch, GpuKernels.CompileOptions);
        Assert.True(cubin.Length > 10_000);
    }

    [Fact]
    public void Compile_BrokenSource_ThrowsWithTheCompilerLogOrNvrtcIsAbsent()
    {
        var nvrtc = Nvrtc.TryLoad(out var failure);
        if (nvrtc == null)
        {
            Assert.Contains("libnvrtc", failure);
            return;
        }
        var e = Assert.Throws<CudaException>(() => nvrtc.CompileUncached("extern \"C\" __global__ void k() { undefined_call(); }", "bad.cu", "sm_80", []));
        Assert.Contains("undefined_call", e.Message);
    }
}
