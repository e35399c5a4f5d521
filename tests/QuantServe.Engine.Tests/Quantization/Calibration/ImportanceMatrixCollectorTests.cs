using System.Diagnostics;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;
using QuantServe.Engine.Quantization.Calibration;
using QuantServe.Engine.Quantization.Gguf;
using QuantServe.Engine.Quantization.Presets;
using QuantServe.Engine.Tests.TestSupport;
using Xunit.Abstractions;

namespace QuantServe.Engine.Tests.Quantization.Calibration;

public class ImportanceMatrixCollectorTests(ITestOutputHelper output)
{
    private static readonly string F16 = Path.Combine(SharedAssets.Prose15mGguf, "prose-15m-f16.gguf");
    private static readonly string Bible = SharedAssets.Path("eval", "bible.txt");
    private static readonly string Pydoc = SharedAssets.Path("eval", "pydoc.txt");

    // Records the first token's input row for each (layer, input), to check the collector against plain arithmetic.
    private sealed class FirstRows : IActivationObserver
    {
        public readonly Dictionary<(int, LinearInput), float[]> Rows = new();
        public void Observe(int layer, LinearInput input, ReadOnlySpan<float> rows, int tokens, int width)
        {
            Assert.Equal(tokens * width, rows.Length);
            Rows.TryAdd((layer, input), rows[..width].ToArray());
        }
    }

    [Fact]
    public void Collect_TwoTokenWindow_WeightsBoundTheObservedSquares()
    {
        using var model = ModelLoader.Load(SharedAssets.Stories260K);
        var rows = new FirstRows();
        var single = CalibrationSet.FromText("Once", model.Tokenizer, 512, samples: 1, sequenceLength: 2);
        CalibrationRunner.Run(model, single, rows);
        var collector = CalibrationRunner.CollectImportance(model, single);
        var im = collector.ToImportanceMatrix();
        Assert.Equal(model.Config.Layers * 7, im.Count);
        Assert.Equal(2, collector.Tokens);
        // Two tokens (BOS, "Once"); the first token's square is a lower bound of the mean times two.
        for (int l = 0; l < model.Config.Layers; l++)
        {
            var q = im.Find($"blk.{l}.attn_q.weight")!;
            Assert.Equal(q, im.Find($"blk.{l}.attn_v.weight"));
            Assert.Equal(model.Config.HiddenDim, im.Find($"blk.{l}.ffn_down.weight")!.Length);
            var first = rows.Rows[(l, LinearInput.AttentionQkv)];
            for (int j = 0; j < first.Length; j++) Assert.True(2 * q[j] >= first[j] * first[j] * (1 - 1e-5f));
        }
    }

    [Fact]
    public void WriteDat_ReadBack_EqualsCollectedWeights()
    {
        using var model = ModelLoader.Load(SharedAssets.Stories260K);
        var set = CalibrationSet.Load(Bible, model.Tokenizer, model.Config.ContextLength, samples: 3, sequenceLength: 32);
        var collector = CalibrationRunner.CollectImportance(model, set);
        using var dir = new TempModelFolder();
        string path = dir.Path("imatrix.dat");
        collector.WriteDat(path, "bible.txt");
        var read = ImportanceMatrix.Load(path);
        var mine = collector.ToImportanceMatrix();
        Assert.Equal(mine.Count, read.Count);
        foreach (var (name, _, _) in collector.Entries())
        {
            var a = mine.Find(name)!;
            var b = read.Find(name)!;
            Assert.Equal(a.Length, b.Length);
            for (int j = 0; j < a.Length; j++) Assert.Equal(a[j], b[j], a[j] * 1e-6f + 1e-30f);
            Assert.Contains(a, v => v > 0);
        }
    }

    // About 30 s on 2 cores (calibration, two Q4_K_M quantizations, three models over 4 × 256 tokens).
    [Fact]
    [Trait("Category", "Slow")]
    public void ImatrixQ4KM_CalibratedOnBible_HasLowerKlThanPlainQ4KMOnPydoc()
    {
        var sw = Stopwatch.StartNew();
        using var dir = new TempModelFolder();
        ImportanceMatrix im;
        using (var f16 = ModelLoader.Load(F16))
        {
            var set = CalibrationSet.Load(Bible, f16.Tokenizer, f16.Config.ContextLength, samples: 16, sequenceLength: 256);
            im = CalibrationRunner.CollectImportance(f16, set).ToImportanceMatrix();
        }
        output.WriteLine($"imatrix: {sw.Elapsed.TotalSeconds:F1} s");
        string plain = dir.Path("plain.gguf"), weighted = dir.Path("imatrix.gguf");
        GgufQuantizer.Quantize(F16, plain, new QuantizeOptions { Preset = GgufPresets.Find("Q4_K_M") });
        GgufQuantizer.Quantize(F16, weighted, new QuantizeOptions { Preset = GgufPresets.Find("Q4_K_M"), Imatrix = im });
        output.WriteLine($"quantized: {sw.Elapsed.TotalSeconds:F1} s");

        using var reference = ModelLoader.Load(F16);
        using var plainModel = ModelLoader.Load(plain);
        using var weightedModel = ModelLoader.Load(weighted);
        var windows = CalibrationSet.Load(Pydoc, reference.Tokenizer, 256, samples: 4, sequenceLength: 256).Windows;
        double klPlain = MeanKl(reference, plainModel, windows);
        double klWeighted = MeanKl(reference, weightedModel, windows);
        output.WriteLine($"KL vs F16 on pydoc: plain Q4_K_M {klPlain:F5}, imatrix Q4_K_M {klWeighted:F5} ({sw.Elapsed.TotalSeconds:F1} s)");
        Assert.True(klWeighted < klPlain, $"imatrix KL {klWeighted} is not below plain KL {klPlain}");
    }

    private static double MeanKl(LoadedModel p, LoadedModel q, IReadOnlyList<int[]> windows)
    {
        double sum = 0;
        long n = 0;
        foreach (var w in windows)
        {
            var lp = AllLogits(p, w);
            var lq = AllLogits(q, w);
            int v = p.Config.VocabSize;
            for (int t = 0; t < w.Length; t++)
            {
                sum += Kl(lp.AsSpan(t * v, v), lq.AsSpan(t * v, v));
                n++;
            }
        }
        return sum / n;
    }

    private static float[] AllLogits(LoadedModel loaded, int[] tokens)
    {
        var model = new LlamaModel(loaded, tokens.Length);
        var logits = new float[tokens.Length * model.VocabSize];
        model.Forward([new SequenceChunk(model.CreateCache(tokens.Length), tokens)], logits, logitsForAllPositions: true);
        return logits;
    }

    // KL(P‖Q) of softmax distributions from logits, in nats.
    private static double Kl(ReadOnlySpan<float> p, ReadOnlySpan<float> q)
    {
        double mp = double.NegativeInfinity, mq = double.NegativeInfinity;
        for (int i = 0; i < p.Length; i++) { mp = Math.Max(mp, p[i]); mq = Math.Max(mq, q[i]); }
        double zp = 0, zq = 0;
        for (int i = 0; i < p.Length; i++) { zp += Math.Exp(p[i] - mp); zq += Math.Exp(q[i] - mq); }
        double lzp = Math.Log(zp) + mp, lzq = Math.Log(zq) + mq, kl = 0;
        for (int i = 0; i < p.Length; i++)
        {
            double lp = p[i] - lzp;
            kl += Math.Exp(lp) * (lp - (q[i] - lzq));
        }
        return kl;
    }
}
