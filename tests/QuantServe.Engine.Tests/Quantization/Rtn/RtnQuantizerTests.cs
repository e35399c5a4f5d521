using QuantServe.Engine.Formats.QuantizedFolder;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;
using QuantServe.Engine.Quantization.Formats;
using QuantServe.Engine.Quantization.Rtn;
using QuantServe.Engine.Tensors;
using QuantServe.Engine.Tests.TestSupport;
using Xunit.Abstractions;

namespace QuantServe.Engine.Tests.Quantization.Rtn;

/// <summary>RtnQuantizer end to end: the folder it writes loads bit-identically and runs, on stories260K and prose-15m.</summary>
public class RtnQuantizerTests(ITestOutputHelper output)
{
    /// <summary>Quantizes <paramref name="source"/> into a fresh temporary folder.</summary>
    private static (TempModelFolder Dir, RtnQuantizeResult Result) QuantizeTo(string source, string type, string embeddingType = "int8")
    {
        var dir = new TempModelFolder();
        var result = RtnQuantizer.Quantize(source, dir.Path("q"), new RtnQuantizeOptions { Type = type, EmbeddingType = embeddingType });
        return (dir, result);
    }

    /// <summary>Every matrix of <paramref name="loaded"/> holds exactly the bytes quantizing the source's matrix gives.</summary>
    private static unsafe void AssertBitIdentical(LoadedModel source, LoadedModel loaded)
    {
        var a = source.Weights.Matrices.ToList();
        var b = loaded.Weights.Matrices.ToList();
        Assert.Equal(a.Count, b.Count);
        for (int i = 0; i < a.Count; i++)
        {
            var m = b[i];
            Assert.Equal((a[i].Rows, a[i].Cols), (m.Rows, m.Cols));
            var expected = new byte[m.Rows * m.Format.RowBytes(m.Cols)];
            if (m.Format is RtnFormat rtn) rtn.QuantizeMatrix(a[i], expected);
            else
            {
                var row = new float[m.Cols];
                for (int r = 0; r < m.Rows; r++)
                {
                    a[i].DequantizeRow(r, row);
                    var h = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, Half>(expected.AsSpan(r * m.Cols * 2, m.Cols * 2));
                    for (int j = 0; j < m.Cols; j++) h[j] = (Half)row[j];
                }
            }
            Assert.True(expected.AsSpan().SequenceEqual(new ReadOnlySpan<byte>(m.Data, (int)m.ByteCount)), $"{m.Name} ({m.Format.Name}) differs from a fresh quantization");
        }
        Assert.Equal(source.Weights.FinalNorm, loaded.Weights.FinalNorm);
        for (int l = 0; l < source.Weights.Layers.Length; l++)
        {
            Assert.Equal(source.Weights.Layers[l].AttnNorm, loaded.Weights.Layers[l].AttnNorm);
            Assert.Equal(source.Weights.Layers[l].FfnNorm, loaded.Weights.Layers[l].FfnNorm);
        }
    }

    private static int[] Greedy(LoadedModel model, string prompt, int tokens)
    {
        var generator = new TextGenerator(model);
        var ids = model.Tokenizer.Encode(prompt, addBos: true);
        var options = new GenerationOptions { MaxTokens = tokens, Sampling = SamplingOptions.Greedy, IgnoreEos = true };
        return generator.Generate(ids, options).Select(t => t.Token).ToArray();
    }

    /// <summary>Mean NLL (nats/token) of <paramref name="model"/> on the stories, and mean KL(reference ‖ model) when
    /// reference log-probabilities are given; returns the model's log-probabilities for later comparisons.</summary>
    private static (double Nll, double Kl, List<float[]> LogProbs) Evaluate(LoadedModel model, IReadOnlyList<int[]> stories, List<float[]>? reference)
    {
        var llama = new LlamaModel(model);
        int v = llama.VocabSize;
        double nll = 0, kl = 0;
        long n = 0;
        var all = new List<float[]>();
        foreach (var ids in stories)
        {
            var cache = llama.CreateCache(ids.Length);
            var logits = new float[ids.Length * v];
            llama.Forward([new SequenceChunk(cache, ids)], logits, logitsForAllPositions: true);
            for (int t = 0; t + 1 < ids.Length; t++)
            {
                var row = logits.AsSpan(t * v, v);
                float max = float.NegativeInfinity;
                foreach (float x in row) max = MathF.Max(max, x);
                double sum = 0;
                foreach (float x in row) sum += Math.Exp(x - max);
                double lse = max + Math.Log(sum);
                var lp = new float[v];
                for (int k = 0; k < v; k++) lp[k] = (float)(row[k] - lse);
                nll -= lp[ids[t + 1]];
                if (reference != null)
                {
                    var p = reference[all.Count];
                    for (int k = 0; k < v; k++) kl += Math.Exp(p[k]) * (p[k] - lp[k]);
                }
                all.Add(lp);
                n++;
            }
        }
        return (nll / n, kl / n, all);
    }

    private static List<int[]> StoriesOf(LoadedModel model, int count) =>
        File.ReadAllText(SharedAssets.Path("eval", "stories260k-samples.txt"))
            .Split("\n\n", StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Take(count)
            .Select(s => model.Tokenizer.Encode(s, addBos: true).Take(256).ToArray())
            .ToList();

    private static HashSet<string> StoryWords() =>
        File.ReadAllText(SharedAssets.Path("eval", "stories260k-samples.txt"))
            .Split([' ', '\n', '.', ',', '!', '?', '"', '\''], StringSplitOptions.RemoveEmptyEntries)
            .Select(w => w.ToLowerInvariant()).ToHashSet();

    /// <summary>Budgets: perplexity ratio to F32 and mean KL(F32 ‖ quantized) on 30 in-distribution stories, and the
    /// greedy tokens (of 30) that must equal F32's before the first difference.</summary>
    public static TheoryData<string, double, double, int> Stories260KBudgets => new()
    {
        // Measured (30 stories ≤ 256 tokens): int8 ×1.0012 KL 0.0010 30/30; int8-asym ×1.0006 0.0009 30/30;
        // llm-int8 ×1.0011 0.0014 30/30; int4-g32 ×1.139 0.122 30/30; nf4 ×1.119 0.103 16/30; nf4-dq ×1.119 0.103 16/30;
        // fp4 ×1.238 0.196 16/30 (int3-g32: ×3.03, KL 1.07; 3 bits are too few for this 260K-parameter model).
        { "int8", 1.01, 0.002, 30 },
        { "int8-asym", 1.01, 0.002, 30 },
        { "llm-int8", 1.01, 0.003, 30 },
        { "int4-g32", 1.17, 0.15, 16 },
        { "nf4", 1.15, 0.13, 10 },
        { "nf4-dq", 1.15, 0.13, 10 },
        { "fp4", 1.28, 0.23, 10 },
    };

    [Theory]
    [Trait("Category", "Slow")]
    [MemberData(nameof(Stories260KBudgets))]
    public void Quantize_Stories260K_LoadsBitIdenticalAndStaysCloseToF32(string type, double pplRatio, double klBudget, int sameTokens)
    {
        using var f32 = ModelLoader.Load(SharedAssets.Stories260K);
        var (dir, result) = QuantizeTo(SharedAssets.Stories260K, type);
        using (dir)
        {
            Assert.Equal("quantserve", ModelLoader.DetectFormat(dir.Path("q")));
            using var q = ModelLoader.Load(dir.Path("q"));
            Assert.Equal("quantserve", q.SourceFormat);
            Assert.Equal(f32.Config, q.Config with { });
            Assert.Equal(type, q.Weights.Layers[0].Wq.Format.Name);
            Assert.Equal("int8", q.Weights.TokenEmbedding.Format.Name);
            AssertBitIdentical(f32, q);

            var stories = StoriesOf(f32, 30);
            var (nllF32, _, reference) = Evaluate(f32, stories, null);
            var (nllQ, kl, _) = Evaluate(q, stories, reference);
            double ratio = Math.Exp(nllQ - nllF32);
            var expected = Greedy(f32, "Once upon a time", 30);
            var actual = Greedy(q, "Once upon a time", 30);
            int same = expected.Zip(actual).TakeWhile(p => p.First == p.Second).Count();
            string text = q.Tokenizer.Decode(actual);
            output.WriteLine($"{type}: {result.BitsPerWeight:F2} bits/weight (matrices), PPL {Math.Exp(nllQ):F3} vs F32 {Math.Exp(nllF32):F3} (x{ratio:F4}), KL {kl:F5}, greedy prefix {same}/30: {text}");

            Assert.True(ratio <= pplRatio, $"{type}: perplexity ratio {ratio:F4} > {pplRatio}");
            Assert.True(kl <= klBudget, $"{type}: KL {kl:F5} > {klBudget}");
            Assert.True(same >= sameTokens, $"{type}: only {same} greedy tokens match F32 ({text})");
            var words = StoryWords();
            var generated = text.Split([' ', '\n', '.', ',', '!', '?', '"', '\''], StringSplitOptions.RemoveEmptyEntries);
            double known = generated.Count(w => words.Contains(w.ToLowerInvariant())) / (double)generated.Length;
            Assert.True(known >= 0.8, $"{type}: only {known:P0} of the generated words are story words: {text}");
        }
    }

    [Theory]
    [InlineData("int8", 30)]
    [InlineData("int4-g32", 16)]
    [InlineData("nf4", 10)]
    [InlineData("llm-int8", 30)]
    public void Quantize_Stories260K_GreedyTextFollowsF32(string type, int sameTokens)
    {
        using var f32 = ModelLoader.Load(SharedAssets.Stories260K);
        var (dir, _) = QuantizeTo(SharedAssets.Stories260K, type);
        using (dir)
        {
            using var q = ModelLoader.Load(dir.Path("q"));
            AssertBitIdentical(f32, q);
            var expected = Greedy(f32, "Once upon a time", 30);
            var actual = Greedy(q, "Once upon a time", 30);
            int same = expected.Zip(actual).TakeWhile(p => p.First == p.Second).Count();
            Assert.True(same >= sameTokens, $"{type}: only {same} greedy tokens match F32 ({q.Tokenizer.Decode(actual)})");
        }
    }

    [Theory]
    [Trait("Category", "Slow")]
    [InlineData("int4-g128")]
    [InlineData("nf4")]
    public void Quantize_Prose15m_LoadsBitIdenticalAndGenerates(string type)
    {
        using var source = ModelLoader.Load(SharedAssets.Prose15m);
        var (dir, result) = QuantizeTo(SharedAssets.Prose15m, type, embeddingType: "F16");
        using (dir)
        {
            using var q = ModelLoader.Load(dir.Path("q"));
            Assert.Equal(source.Config, q.Config);
            AssertBitIdentical(source, q);
            Assert.True(File.Exists(dir.Path("q/tokenizer.json")) && File.Exists(dir.Path("q/config.json")));
            Assert.Equal(source.Tokenizer.Encode("In the beginning God created", true), q.Tokenizer.Encode("In the beginning God created", true));
            var expected = Greedy(source, "In the beginning God created", 12);
            var actual = Greedy(q, "In the beginning God created", 12);
            int same = expected.Zip(actual).TakeWhile(p => p.First == p.Second).Count();
            output.WriteLine($"{type}: {result.BitsPerWeight:F2} bits/weight, {result.BytesBefore} -> {result.BytesAfter} bytes, {result.Seconds:F1} s, greedy prefix {same}/12: {q.Tokenizer.Decode(actual)}");
            Assert.True(same >= 1, $"{type}: first greedy token differs from the F16 model's: {q.Tokenizer.Decode(actual)}");
        }
    }

    [Fact]
    public void Quantize_CancelledAfterFirstTensor_LeavesNoOutputOrTemporaryFolder()
    {
        using var dir = new TempModelFolder();
        using var cts = new CancellationTokenSource();
        var options = new RtnQuantizeOptions { Type = "int4-g32", Progress = new SynchronousProgress(_ => cts.Cancel()) };
        Assert.ThrowsAny<OperationCanceledException>(() => RtnQuantizer.Quantize(SharedAssets.Stories260K, dir.Path("q"), options, cts.Token));
        Assert.Empty(Directory.EnumerateFileSystemEntries(dir.Dir));
    }

    [Fact]
    public void Quantize_ProgressReports_EndAtOneForEveryMatrix()
    {
        var reports = new List<RtnQuantizeProgress>();
        using var dir = new TempModelFolder();
        var r = RtnQuantizer.Quantize(SharedAssets.Stories260K, dir.Path("q"),
            new RtnQuantizeOptions { Type = "nf4", Progress = new SynchronousProgress(reports.Add) });
        Assert.Equal(r.Tensors.Count, reports.Count);
        Assert.Equal(1.0, reports[^1].Fraction, 9);
        Assert.Equal(1 + 5 * 7, r.Tensors.Count); // tied embedding + 5 layers × 7 matrices
    }

    [Fact]
    public void Quantize_OverExistingNonModelFolder_Refuses()
    {
        using var dir = new TempModelFolder();
        Directory.CreateDirectory(dir.Path("q"));
        File.WriteAllText(dir.Path("q/notes.txt"), "keep me");
        Assert.Throws<IOException>(() => RtnQuantizer.Quantize(SharedAssets.Stories260K, dir.Path("q"), new RtnQuantizeOptions { Type = "int8" }));
        Assert.Equal("keep me", File.ReadAllText(dir.Path("q/notes.txt")));
    }

    [Fact]
    public void Quantize_UnknownType_ThrowsNamingIt()
    {
        using var dir = new TempModelFolder();
        var e = Assert.Throws<ArgumentException>(() => RtnQuantizer.Quantize(SharedAssets.Stories260K, dir.Path("q"), new RtnQuantizeOptions { Type = "int5-g32" }));
        Assert.Contains("int5-g32", e.Message);
    }

    [Theory]
    [InlineData("\"version\": 1", "\"version\": 7", "version 7")]
    [InlineData("\"model.layers.0.self_attn.q_proj.weight\"", "\"renamed\"", "model.layers.0.self_attn.q_proj.weight")]
    [InlineData("\"type\": \"int4-g32\"", "\"type\": \"int9-g32\"", "int9-g32")]
    public void Load_DamagedQuantizationConfig_ThrowsModelLoadExceptionNamingProblem(string find, string replace, string expected)
    {
        var (dir, _) = QuantizeTo(SharedAssets.Stories260K, "int4-g32");
        using (dir)
        {
            string path = dir.Path("q/" + QuantizedFolderLayout.ConfigFileName);
            string json = File.ReadAllText(path);
            Assert.Contains(find, json);
            File.WriteAllText(path, json.Replace(find, replace));
            var e = Assert.Throws<ModelLoadException>(() => ModelLoader.Load(dir.Path("q")));
            Assert.Contains(expected, e.Message);
        }
    }

    private sealed class SynchronousProgress(Action<RtnQuantizeProgress> report) : IProgress<RtnQuantizeProgress>
    {
        public void Report(RtnQuantizeProgress value) => report(value);
    }
}
