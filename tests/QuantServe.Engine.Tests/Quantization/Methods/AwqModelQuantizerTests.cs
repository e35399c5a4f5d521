using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;
using QuantServe.Engine.Quantization.Calibration;
using QuantServe.Engine.Quantization.Methods;
using QuantServe.Engine.Tests.TestSupport;
using Xunit.Abstractions;

namespace QuantServe.Engine.Tests.Quantization.Methods;

public class AwqModelQuantizerTests(ITestOutputHelper output)
{
    private static readonly string Bible = SharedAssets.Path("eval", "bible.txt");
    private static readonly string Pydoc = SharedAssets.Path("eval", "pydoc.txt");

    private static CalibrationSet Calibration(LoadedModel m, int samples = 4, int length = 128)
        => CalibrationSet.Load(Bible, m.Tokenizer, m.Config.ContextLength, samples, length);

    private static float[] Logits(LoadedModel loaded, int[] tokens)
    {
        var model = new LlamaModel(loaded, tokens.Length);
        var logits = new float[tokens.Length * loaded.Config.VocabSize];
        model.Forward([new SequenceChunk(model.CreateCache(tokens.Length), tokens)], logits, logitsForAllPositions: true);
        return logits;
    }

    [Fact]
    public void Quantize_ScaleOnly_FoldedScalesPreserveFloatLogits()
    {
        using var reference = ModelLoader.Load(SharedAssets.Prose15m);
        using var folded = ModelLoader.Load(SharedAssets.Prose15m);
        var result = AwqModelQuantizer.Quantize(folded, Calibration(folded, 2, 64), new AwqOptions { ScaleOnly = true, FixedAlpha = 0.5 });
        Assert.Empty(result.Matrices);
        // The scales are far from 1, so an unfolded or mis-folded scale would change the logits grossly.
        Assert.NotEqual(reference.Weights.Layers[3].FfnNorm, folded.Weights.Layers[3].FfnNorm);
        var tokens = CalibrationSet.Load(Pydoc, reference.Tokenizer, 256, 1, 64).Windows[0];
        var a = Logits(reference, tokens);
        var b = Logits(folded, tokens);
        double max = 0;
        for (int i = 0; i < a.Length; i++) max = Math.Max(max, Math.Abs(a[i] - b[i]));
        output.WriteLine($"max |Δ logit| = {max:E2}");
        Assert.True(max < 1e-4, $"folding changed a logit by {max}");
    }

    [Fact]
    public void Quantize_AlphaZeroWithoutClipping_EqualsRoundToNearest()
    {
        using var awq = ModelLoader.Load(SharedAssets.Prose15m);
        using var rtn = ModelLoader.Load(SharedAssets.Prose15m);
        var options = new AwqOptions { FixedAlpha = 0, Clip = false };
        var set = Calibration(awq, 1, 32);
        var matrices = new Dictionary<string, AwqMatrix>();
        var choices = new Dictionary<string, AwqGroupChoice>();
        AwqModelQuantizer.QuantizeLayer(awq, set, 0, options, matrices, choices);
        AwqModelQuantizer.QuantizeLayer(awq, set, 5, options, matrices, choices);
        var expected = AwqModelQuantizer.RoundToNearest(rtn, options).Matrices;
        Assert.Equal(14, matrices.Count);
        foreach (var (name, m) in matrices)
        {
            var e = expected[name];
            Assert.Equal(e.Q, m.Q);
            Assert.Equal(e.Scales, m.Scales);
            Assert.Equal(e.Zeros, m.Zeros);
        }
        Assert.Equal(rtn.Weights.Layers[0].AttnNorm, awq.Weights.Layers[0].AttnNorm);
        Assert.Equal(rtn.Weights.Layers[5].FfnNorm, awq.Weights.Layers[5].FfnNorm);
        Assert.All(choices.Values, c => Assert.Equal(c.RtnError, c.Error));
    }

    [Fact]
    public void Quantize_KeptHiddenStates_MatchWholeModelCalibrationOfEachLayer()
    {
        // Quantize advances each window's residual stream one layer at a time; QuantizeLayer re-runs the whole (partly
        // quantized) model per layer. Both must see the same activations and so choose the same scales and codes.
        using var kept = ModelLoader.Load(SharedAssets.Stories260K);
        using var whole = ModelLoader.Load(SharedAssets.Stories260K);
        var options = new AwqOptions { Grid = 5, ClipGrid = 4, GroupSize = 32 };
        var set = Calibration(kept, 3, 96);
        var result = AwqModelQuantizer.Quantize(kept, set, options);
        var matrices = new Dictionary<string, AwqMatrix>();
        var choices = new Dictionary<string, AwqGroupChoice>();
        for (int l = 0; l < whole.Config.Layers; l++) AwqModelQuantizer.QuantizeLayer(whole, set, l, options, matrices, choices);
        Assert.Equal(7 * whole.Config.Layers, result.Matrices.Count);
        foreach (var (name, choice) in choices) Assert.Equal(choice.Alpha, result.Choices[name].Alpha);
        int differing = 0, total = 0;
        foreach (var (name, m) in matrices)
        {
            var k = result.Matrices[name];
            for (int i = 0; i < m.Q.Length; i++) { total++; if (m.Q[i] != k.Q[i]) differing++; }
        }
        output.WriteLine($"{differing} of {total} codes differ");
        Assert.True(differing <= total / 10_000, $"{differing} of {total} codes differ");
    }

    [Fact]
    public void QuantizeLayer_RealProse15mLayer_OutputErrorBelowRoundToNearest()
    {
        using var reference = ModelLoader.Load(SharedAssets.Prose15m);
        using var awq = ModelLoader.Load(SharedAssets.Prose15m);
        using var rtn = ModelLoader.Load(SharedAssets.Prose15m);
        var options = new AwqOptions { Bits = 3 };
        var choices = new Dictionary<string, AwqGroupChoice>();
        AwqModelQuantizer.QuantizeLayer(awq, Calibration(awq), 2, options, new Dictionary<string, AwqMatrix>(), choices);
        foreach (var (name, c) in choices) output.WriteLine($"{name}: alpha {c.Alpha:F2}, error {c.Error:G4} vs RTN {c.RtnError:G4}");
        Assert.All(choices.Values, c => Assert.True(c.Error <= c.RtnError));
        Assert.True(choices.Values.Sum(c => c.Error) < choices.Values.Sum(c => c.RtnError));

        // Independent check on held-out text: only layer 2 quantized, squared logit error against the float model.
        var l2 = AwqModelQuantizer.RoundToNearest(rtn, options); // all layers; restore all but layer 2
        for (int l = 0; l < rtn.Config.Layers; l++) if (l != 2) rtn.Weights.Layers[l] = reference.Weights.Layers[l];
        var tokens = CalibrationSet.Load(Pydoc, reference.Tokenizer, 256, 1, 256).Windows[0];
        var f = Logits(reference, tokens);
        double Err(LoadedModel m)
        {
            var x = Logits(m, tokens);
            double e = 0;
            for (int i = 0; i < x.Length; i++) e += (x[i] - f[i]) * (double)(x[i] - f[i]);
            return e / x.Length;
        }
        double eAwq = Err(awq), eRtn = Err(rtn);
        output.WriteLine($"held-out logit MSE, layer 2 at 3 bits: AWQ {eAwq:G4}, RTN {eRtn:G4}");
        Assert.True(eAwq < eRtn, $"AWQ logit error {eAwq} is not below RTN {eRtn}");
    }

    private static double Perplexity(LoadedModel loaded, IReadOnlyList<int[]> windows)
    {
        double nll = 0;
        long n = 0;
        int v = loaded.Config.VocabSize;
        foreach (var w in windows)
        {
            var logits = Logits(loaded, w);
            for (int t = 0; t + 1 < w.Length; t++)
            {
                var row = logits.AsSpan(t * v, v);
                double max = double.NegativeInfinity;
                foreach (float f in row) max = Math.Max(max, f);
                double z = 0;
                foreach (float f in row) z += Math.Exp(f - max);
                nll += Math.Log(z) + max - row[w[t + 1]];
                n++;
            }
        }
        return Math.Exp(nll / n);
    }

    // Minutes on 2 cores: eight calibration passes and searches per width. RTN is QuantServe's int4-g128 / int3-g128 as
    // quantize writes them (F16 embedding here, as AWQ keeps it).
    [Theory]
    [Trait("Category", "Slow")]
    [InlineData(4)]
    [InlineData(3)]
    public void Quantize_Prose15mCalibratedOnBible_PerplexityOnPydocBelowRtn(int bits)
    {
        using var awq = ModelLoader.Load(SharedAssets.Prose15m);
        var eval = CalibrationSet.Load(Pydoc, awq.Tokenizer, 256, samples: 4, sequenceLength: 256).Windows;
        using var folder = new TempModelFolder();
        QuantServe.Engine.Quantization.Rtn.RtnQuantizer.Quantize(SharedAssets.Prose15m, folder.Path("rtn"),
            new QuantServe.Engine.Quantization.Rtn.RtnQuantizeOptions { Type = $"int{bits}-g128", EmbeddingType = "F16" });
        double pplRtn;
        using (var rtn = ModelLoader.Load(folder.Path("rtn"))) pplRtn = Perplexity(rtn, eval);
        var result = AwqModelQuantizer.Quantize(awq, Calibration(awq, 16, 256), new AwqOptions { Bits = bits });
        AwqModelQuantizer.UseIntegerKernels(awq, result);
        double pplAwq = Perplexity(awq, eval);
        output.WriteLine($"{bits}-bit g128: RTN {pplRtn:F3}, AWQ {pplAwq:F3} (AWQ {result.Seconds:F1} s)");
        Assert.True(pplAwq < pplRtn, $"AWQ perplexity {pplAwq} is not below RTN {pplRtn}");
    }

    [Fact]
    public void TieAcrossQueryHeads_GroupedQueryAttention_AveragesHeadsSharingAKvHead()
    {
        using var m = ModelLoader.Load(SharedAssets.Prose15m);
        var c = m.Config; // 8 heads, 4 kv heads, head_dim 32
        var mean = Enumerable.Range(0, c.QDim).Select(i => (float)i).ToArray();
        var tied = AwqModelQuantizer.TieAcrossQueryHeads(mean, c);
        // Heads 2 and 3 share kv head 1: channel d of both becomes the average of 64 + d and 96 + d.
        Assert.Equal(80f + 5, tied[2 * 32 + 5]);
        Assert.Equal(80f + 5, tied[3 * 32 + 5]);
        Assert.Equal(16f, tied[0]);
    }
}
