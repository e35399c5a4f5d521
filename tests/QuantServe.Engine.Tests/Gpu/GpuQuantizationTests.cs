using System.Text.RegularExpressions;
using QuantServe.Engine.Formats.Gguf;
using QuantServe.Engine.Gpu;
using QuantServe.Engine.Models;
using QuantServe.Engine.Quantization.Calibration;
using QuantServe.Engine.Quantization.Gguf;
using QuantServe.Engine.Quantization.Presets;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Gpu;

public class GpuQuantizationTests
{
    private static readonly string F16 = Path.Combine(SharedAssets.Prose15mGguf, "prose-15m-f16.gguf");

    [Fact]
    public void Source_QuantKernels_DefineEveryKernelTheLauncherLoads()
    {
        var names = Regex.Matches(GpuKernels.Source(), @"extern ""C"" __global__ void (\w+)\(").Select(m => m.Groups[1].Value).ToHashSet();
        foreach (var k in new[] { "kq_quantize_q2k", "kq_quantize_q3k", "kq_quantize_q4k", "kq_quantize_q5k", "kq_quantize_q6k", "gptq_hessian_add", "gptq_block", "gptq_trailing" })
            Assert.Contains(k, names);
    }

    [GpuFact]
    public void Quantize_ProseQ4KM_OnTheGpu_TensorBytesEqualTheCpus()
    {
        using var gpu = GpuQuantization.Open(0);
        using var dir = new TempModelFolder();
        string cpuPath = dir.Path("cpu.gguf"), gpuPath = dir.Path("gpu.gguf");
        GgufQuantizer.Quantize(F16, cpuPath, new QuantizeOptions { Preset = GgufPresets.Find("Q4_K_M") });
        GgufQuantizer.Quantize(F16, gpuPath, new QuantizeOptions { Preset = GgufPresets.Find("Q4_K_M"), Accelerator = gpu });
        Assert.True(File.ReadAllBytes(cpuPath).AsSpan().SequenceEqual(File.ReadAllBytes(gpuPath)));
    }

    [GpuFact]
    public void KQuant_ProseMatricesAndRandomRows_EveryBlockIdentical()
    {
        using var gpu = GpuQuantization.Open(0);
        using var model = ModelLoader.Load(F16);
        foreach (var r in GpuQuantCheck.KQuant(gpu, model, 256, Environment.ProcessorCount))
            Assert.True(r.Identical == r.Blocks, $"{r.Data} {r.Type} imatrix={r.Weighted}: {r.Blocks - r.Identical} blocks differ");
    }

    [GpuFact]
    public void Gptq_ProseLayer0_CodesAndOutputErrorAgreeWithTheCpu()
    {
        using var gpu = GpuQuantization.Open(0);
        using var model = ModelLoader.Load(SharedAssets.Prose15m);
        var text = File.ReadAllText(SharedAssets.Path("eval", "bible.txt"));
        var set = CalibrationSet.FromText(text, model.Tokenizer, model.Config.ContextLength, 8, 128, "bible.txt");
        foreach (var r in GpuQuantCheck.Gptq(gpu, model, set, ["gptq-int4-g128", "gptq-int4-g128-act"]))
        {
            Assert.True(r.IdenticalPercent >= 99.9, $"{r.Matrix} {r.Type} ({r.Hessian} Hessian): {r.IdenticalPercent:F3} % identical");
            Assert.True(r.ErrorDelta <= 0.01, $"{r.Matrix} {r.Type}: GPU error {r.GpuError} vs CPU {r.CpuError}");
            Assert.Equal(0, r.HessianRelDiff);
        }
    }
}
