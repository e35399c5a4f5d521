using QuantServe.Engine.Gpu;
using QuantServe.Engine.Models;
using QuantServe.Engine.Quantization.Calibration;
using QuantServe.Engine.Quantization.Formats;
using QuantServe.Engine.Quantization.Gguf;
using QuantServe.Engine.Quantization.Methods;
using QuantServe.Engine.Tensors;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Gpu;

/// <summary>
/// The agreement checks run against accelerators that are the CPU itself (row-by-row reference k-quants, GPTQ's CPU
/// Hessian and sweep): every block and code must agree and the reported errors must be equal, so the comparison logic
/// cannot report a difference that is not there. On a GPU machine `quantserve gpu-quant check` runs them on the device.
/// </summary>
public class GpuQuantCheckTests
{
    private sealed class CpuKQuant : IKQuantAccelerator
    {
        public string Name => "cpu";
        public bool Supports(GgmlType type) => type is GgmlType.Q2_K or GgmlType.Q3_K or GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q6_K;

        public void Quantize(GgmlType type, ReadOnlySpan<float> x, int rows, int cols, ReadOnlySpan<float> importance, Span<byte> destination)
        {
            var format = (KQuantFormat)TensorFormats.ForGgml(type)!;
            int rowBytes = (int)format.RowBytes(cols);
            for (int r = 0; r < rows; r++) format.QuantizeRow(x.Slice(r * cols, cols), destination.Slice(r * rowBytes, rowBytes), importance);
        }
    }

    private sealed class CpuGptq : IGptqAccelerator
    {
        public string Name => "cpu";
        public IGptqHessian CreateHessian(int columns) => new GptqHessian(columns);
        public bool TrySweep(GptqPlan plan, ReadOnlySpan<float> weights, byte[] q, float[] scales, int[] zeros) => false;
    }

    [Fact]
    public void KQuant_CpuAgainstItself_EveryBlockIdentical()
    {
        var rows = GpuQuantCheck.KQuant(new CpuKQuant(), null, 16, 2);
        Assert.Equal(GpuQuantCheck.KQuantTypes.Length * 2, rows.Count);
        foreach (var r in rows)
        {
            Assert.Equal(16 * 4096 / 256, r.Blocks);
            Assert.Equal(r.Blocks, r.Identical);
            Assert.Equal(0, r.WorseBlocks);
        }
    }

    [Fact]
    public void Gptq_CpuAgainstItself_IdenticalCodesAndErrors()
    {
        using var model = ModelLoader.Load(Path.Combine(SharedAssets.Prose15mGguf, "prose-15m-f16.gguf"));
        var text = File.ReadAllText(SharedAssets.Path("eval", "bible.txt"));
        var set = CalibrationSet.FromText(text, model.Tokenizer, model.Config.ContextLength, 2, 64, "bible.txt");
        var rows = GpuQuantCheck.Gptq(new CpuGptq(), model, set, ["gptq-int4-g128"]);
        Assert.Equal(6, rows.Count);
        foreach (var r in rows)
        {
            Assert.Equal(100.0, r.IdenticalPercent);
            Assert.Equal(r.CpuError, r.GpuError);
            Assert.Equal(0, r.HessianRelDiff);
            // 4-bit GPTQ of a trained matrix loses a little of the output, never nothing and never most of it.
            Assert.InRange(r.CpuError, 1e-5, 0.2);
        }
    }
}
