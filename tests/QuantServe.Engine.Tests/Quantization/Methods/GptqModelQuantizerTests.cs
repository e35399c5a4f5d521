using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;
using QuantServe.Engine.Quantization.Calibration;
using QuantServe.Engine.Quantization.Methods;
using QuantServe.Engine.Tests.TestSupport;
using Xunit.Abstractions;

namespace QuantServe.Engine.Tests.Quantization.Methods;

public class GptqModelQuantizerTests(ITestOutputHelper output)
{
    private static readonly string Bible = SharedAssets.Path("eval", "bible.txt");
    private static readonly string Pydoc = SharedAssets.Path("eval", "pydoc.txt");

    // The acceptance comparison on all of pydoc (windows of 256): GPTQ, written as a checkpoint and loaded back, against
    // QuantServe's RTN type of the same width as `quantize --type intB-g128` writes it. Minutes on 2 cores.
    [Theory]
    [Trait("Category", "Slow")]
    [InlineData("gptq-int4-g128", "int4-g128")]
    [InlineData("gptq-int4-g128-act", "int4-g128")]
    [InlineData("gptq-int3-g128", "int3-g128")]
    [InlineData("gptq-int3-g128-act", "int3-g128")]
    public void Quantize_Prose15mCalibratedOnBible_PerplexityOnPydocBelowRtn(string gptqType, string rtnType)
    {
        using var dir = new TempModelFolder();
        string text = File.ReadAllText(Pydoc);
        QuantServe.Engine.Quantization.Rtn.RtnQuantizer.Quantize(SharedAssets.Prose15m, dir.Path("rtn"),
            new QuantServe.Engine.Quantization.Rtn.RtnQuantizeOptions { Type = rtnType });
        GptqPipeline.Quantize(SharedAssets.Prose15m, dir.Path("gptq"), gptqType, CalibrationSet.ReadText(Bible), Bible);
        using var rtn = ModelLoader.Load(dir.Path("rtn"));
        using var gptq = ModelLoader.Load(dir.Path("gptq"));
        var windows = QuantServe.Engine.Evaluation.EvaluationWindows.Create(rtn, text, 256);
        double pplRtn = QuantServe.Engine.Evaluation.Perplexity.Compute(rtn, windows).Value;
        double pplG = QuantServe.Engine.Evaluation.Perplexity.Compute(gptq, windows).Value;
        output.WriteLine($"{gptqType}: PPL {pplG:F4}, {rtnType} RTN {pplRtn:F4}");
        Assert.True(pplG < pplRtn, $"GPTQ perplexity {pplG} is not below RTN {pplRtn}");
    }

    [Fact]
    public void Quantize_Stories260KRaggedGroups_ReplacesEveryBlockMatrixWithItsDequantizedResult()
    {
        using var model = ModelLoader.Load(SharedAssets.Stories260K);
        var set = CalibrationSet.Load(SharedAssets.Path("eval", "stories260k-samples.txt"), model.Tokenizer, model.Config.ContextLength, 2, 64);
        var options = new GptqOptions { Bits = 3, GroupSize = 32, Symmetric = false, ActOrder = true };
        var reports = new List<GptqProgress>();
        var result = GptqModelQuantizer.Quantize(model, set, options, new SyncProgress(reports.Add));
        Assert.Equal(5 * 7, result.Matrices.Count);
        Assert.Equal(1.0, reports[^1].Fraction, 1e-9);
        var down = result.Matrices["blk.4.ffn_down.weight"];
        Assert.Equal((64, 172, 6), (down.Rows, down.Cols, down.Groups)); // 172 = 5 × 32 + a ragged group of 12
        var row = new float[172];
        for (int r = 0; r < 64; r++)
        {
            model.Weights.Layers[4].Down.DequantizeRow(r, row);
            for (int c = 0; c < 172; c++) Assert.Equal(down.Dequantize(r, c), row[c]);
        }
        Assert.All(down.Q, q => Assert.InRange(q, 0, 7));
    }

    private sealed class SyncProgress(Action<GptqProgress> report) : IProgress<GptqProgress>
    {
        public void Report(GptqProgress value) => report(value);
    }
}
