using System.Diagnostics;
using QuantServe.Engine.Formats.Gguf;
using QuantServe.Engine.Formats.Safetensors;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;
using QuantServe.Engine.Quantization.Gguf;
using QuantServe.Engine.Quantization.Presets;
using QuantServe.Engine.Tensors;
using QuantServe.Engine.Tests.TestSupport;
using Xunit.Abstractions;

namespace QuantServe.Engine.Tests.Quantization.Gguf;

public class GgufQuantizerTests(ITestOutputHelper output)
{
    private static readonly string F16 = Path.Combine(SharedAssets.Prose15mGguf, "prose-15m-f16.gguf");
    private static string Reference(string preset) => Path.Combine(SharedAssets.Prose15mGguf, $"prose-15m-{preset}.gguf");

    private static QuantizeOptions Options(string preset) => new() { Preset = GgufPresets.Find(preset) };

    private void AssertSameTensorsAsLlamaCpp(string path, string preset)
    {
        using var ours = GgufFile.Open(path);
        using var reference = GgufFile.Open(Reference(preset));
        Assert.Equal(reference.Tensors.Select(t => (t.Name, t.Type, t.Shape)), ours.Tensors.Select(t => (t.Name, t.Type, t.Shape)));
        foreach (var t in reference.Tensors)
            Assert.True(t.Span.SequenceEqual(ours.Tensor(t.Name).Span), $"{preset}: tensor {t.Name} differs from llama-quantize's bytes");
        Assert.Equal(reference.Metadata.GetInteger("general.file_type"), ours.Metadata.GetInteger("general.file_type"));
        Assert.Equal(2, ours.Metadata.GetInteger("general.quantization_version"));
        Assert.Equal(32, ours.Alignment);
    }

    [Fact]
    public void Quantize_ProseF16ToQ8_0_TensorDataEqualsLlamaQuantize()
    {
        using var dir = new TempModelFolder();
        string path = dir.Path("prose-Q8_0.gguf");
        var result = GgufQuantizer.Quantize(F16, path, Options("Q8_0"));
        output.WriteLine($"Q8_0: {result.Seconds:F2} s, {result.BytesBefore} -> {result.BytesAfter} bytes, {result.BitsPerWeight:F2} bpw");
        AssertSameTensorsAsLlamaCpp(path, "Q8_0");
        Assert.Equal(new FileInfo(Reference("Q8_0")).Length, new FileInfo(path).Length);
        Assert.Equal(new[] { path }, Directory.GetFiles(dir.Dir));
    }

    [Fact]
    public void Quantize_ProseF16ToQ4_0_BlockTensorsEqualLlamaQuantize()
    {
        // The Q6_K embedding dominates the time; it is stored as Q8_0 here and checked in the Slow full-file test.
        using var dir = new TempModelFolder();
        string path = dir.Path("prose-Q4_0.gguf");
        GgufQuantizer.Quantize(F16, path, Options("Q4_0") with { Overrides = [TensorTypeOverride.Parse("^token_embd=Q8_0")] });
        using var ours = GgufFile.Open(path);
        using var reference = GgufFile.Open(Reference("Q4_0"));
        Assert.Equal(GgmlType.Q8_0, ours.Tensor("token_embd.weight").Type);
        foreach (var t in reference.Tensors.Where(t => t.Name != "token_embd.weight"))
        {
            Assert.Equal(t.Type, ours.Tensor(t.Name).Type);
            Assert.True(t.Span.SequenceEqual(ours.Tensor(t.Name).Span), $"tensor {t.Name} differs from llama-quantize's bytes");
        }
    }

    [Theory]
    [Trait("Category", "Slow")]
    [InlineData("Q4_0")]
    [InlineData("Q4_K_M")]
    public void Quantize_ProseF16_WholeFileTensorDataEqualsLlamaQuantize(string preset)
    {
        using var dir = new TempModelFolder();
        string path = dir.Path($"prose-{preset}.gguf");
        var result = GgufQuantizer.Quantize(F16, path, Options(preset));
        output.WriteLine($"{preset}: {result.Seconds:F2} s, {result.BitsPerWeight:F2} bpw");
        AssertSameTensorsAsLlamaCpp(path, preset);
        Assert.Equal(new FileInfo(Reference(preset)).Length, new FileInfo(path).Length);
        if (preset == "Q4_K_M") Assert.Equal(new Dictionary<string, int> { ["Q4_K"] = 48, ["Q6_K"] = 9, ["F32"] = 17 }, result.TypeCounts);
    }

    [Fact]
    public void Quantize_ProseF16ToQ8_0_LoadsAndGeneratesLikeLlamaCppsFile()
    {
        using var dir = new TempModelFolder();
        string path = dir.Path("prose-Q8_0.gguf");
        var progress = new List<QuantizeProgress>();
        var result = GgufQuantizer.Quantize(F16, path, Options("Q8_0") with { Progress = new SyncProgress(progress.Add), Threads = 2 });
        Assert.Equal(74, result.Tensors.Count);
        Assert.Equal(1.0, progress[^1].Fraction);
        Assert.True(progress.Zip(progress.Skip(1)).All(p => p.First.Fraction <= p.Second.Fraction + 1e-12));

        using var ours = ModelLoader.Load(path);
        using var theirs = ModelLoader.Load(Reference("Q8_0"));
        Assert.Equal("Q8_0", ours.Precision);
        Assert.Equal("7 (Q8_0)", ours.Metadata["general.file_type"]);
        var a = Greedy(ours, "The quick brown fox", 12);
        Assert.Equal(Greedy(theirs, "The quick brown fox", 12), a);
        Assert.StartsWith("The quick brown fox of the sun", ours.Tokenizer.Decode(a));
    }

    [Fact]
    public void Quantize_HuggingFaceFolderToQ8_0_PermutesQkAndMatchesTheGgufSource()
    {
        using var dir = new TempModelFolder();
        string fromHf = dir.Path("hf-Q8_0.gguf");
        GgufQuantizer.Quantize(SharedAssets.Prose15m, fromHf, Options("Q8_0"));
        // The HF checkpoint holds the same fp16 weights as the GGUF, in rotate-half order: with the rows permuted the
        // quantized blocks must be llama-quantize's, byte for byte.
        using (var ours = GgufFile.Open(fromHf))
        using (var reference = GgufFile.Open(Reference("Q8_0")))
        {
            foreach (var t in reference.Tensors)
                Assert.True(t.Span.SequenceEqual(ours.Tensor(t.Name).Span), $"tensor {t.Name} differs");
            Assert.Equal("llama", ours.Architecture);
            Assert.Equal(reference.Metadata.GetStringArrayOrNull("tokenizer.ggml.tokens"), ours.Metadata.GetStringArrayOrNull("tokenizer.ggml.tokens"));
            Assert.Equal(reference.Metadata.GetIntegerArrayOrNull("tokenizer.ggml.token_type"), ours.Metadata.GetIntegerArrayOrNull("tokenizer.ggml.token_type"));
        }

        using var hf = ModelLoader.Load(fromHf);
        using var gguf = ModelLoader.Load(Reference("Q8_0"));
        var a = LastLogits(hf, "In the beginning God created");
        var b = LastLogits(gguf, "In the beginning God created");
        Assert.Equal(Sampler.ArgMax(b), Sampler.ArgMax(a));
        float maxDiff = a.Zip(b).Max(p => Math.Abs(p.First - p.Second));
        Assert.True(maxDiff < 1e-3f, $"max logit difference {maxDiff}");
        string text = File.ReadAllText(SharedAssets.Path("eval", "pydoc.txt"))[..4000];
        Assert.Equal(gguf.Tokenizer.Encode(text, addBos: true), hf.Tokenizer.Encode(text, addBos: true));
    }

    [Fact]
    public void Quantize_HuggingFaceQwen2WithBiases_KeepsRotateHalfRowsAndTheSourceLogits()
    {
        using var temp = new TempModelFolder(SharedAssets.Prose15m);
        temp.EditText("config.json", "\"model_type\": \"llama\"", "\"model_type\": \"qwen2\"");
        temp.EditText("config.json", "\"LlamaForCausalLM\"", "\"Qwen2ForCausalLM\"");
        var shard = new SafetensorsWriter();
        var bias = new byte[2 * 256];
        for (int i = 0; i < 256; i++) BitConverter.TryWriteBytes(bias.AsSpan(2 * i), (Half)(0.01f * (i % 13) - 0.05f));
        for (int l = 0; l < 8; l++)
            foreach (var (proj, width) in new[] { ("q", 256), ("k", 128), ("v", 128) })
                shard.Add($"model.layers.{l}.self_attn.{proj}_proj.bias", SafetensorsDType.F16, [width], bias[..(2 * width)]);
        shard.Write(temp.Path("model-biases.safetensors"));
        using (var file = SafetensorsFile.Open(temp.Path("model-biases.safetensors")))
            temp.EditText(SafetensorsCheckpoint.IndexFileName, "\"weight_map\": {",
                "\"weight_map\": {" + string.Concat(file.Tensors.Select(t => $"\"{t.Name}\": \"model-biases.safetensors\",")));

        string path = temp.Path("qwen2-f16.gguf");
        var result = GgufQuantizer.Quantize(temp.Dir, path, Options("F16"));
        Assert.Equal(24, result.Tensors.Count(t => t.Tensor.Name.EndsWith(".bias")));
        using var hf = ModelLoader.Load(temp.Dir);
        using var gguf = ModelLoader.Load(path);
        Assert.Equal(("qwen2", RopeStyle.Neox), (gguf.Config.Architecture, gguf.Config.Rope));
        Assert.Equal(LastLogits(hf, "The quick brown fox"), LastLogits(gguf, "The quick brown fox"));
    }

    [Fact]
    public void Quantize_Llama2cToF32_ReproducesTheSourceLogitsAndVocabulary()
    {
        using var dir = new TempModelFolder();
        string path = dir.Path("stories.gguf");
        var result = GgufQuantizer.Quantize(SharedAssets.Stories260K, path, Options("F32"));
        Assert.All(result.Tensors, t => Assert.Equal(GgmlType.F32, t.Tensor.Type));
        using var source = ModelLoader.Load(SharedAssets.Stories260K);
        using var gguf = ModelLoader.Load(path);
        const string prompt = "Once upon a time";
        Assert.Equal(source.Tokenizer.Encode(prompt, addBos: true), gguf.Tokenizer.Encode(prompt, addBos: true));
        Assert.Equal(LastLogits(source, prompt), LastLogits(gguf, prompt));
    }

    [Fact]
    public void Quantize_Llama2cToQ8_0_FallsBackToF16ForRaggedRows()
    {
        using var dir = new TempModelFolder();
        string path = dir.Path("stories-q8.gguf");
        var result = GgufQuantizer.Quantize(SharedAssets.Stories260K, path, Options("Q8_0"));
        var down = result.Tensors.Single(t => t.Tensor.Name == "blk.0.ffn_down.weight").Tensor;
        Assert.Equal(GgmlType.F16, down.Type); // 172 columns fit no 32-block
        Assert.Equal(GgmlType.Q8_0, result.Tensors.Single(t => t.Tensor.Name == "blk.0.attn_q.weight").Tensor.Type);
        using var model = ModelLoader.Load(path);
        int promptTokens = model.Tokenizer.Encode("Once upon a time", addBos: true).Length;
        var tokens = Greedy(model, "Once upon a time", 12);
        Assert.Equal(promptTokens + 12, tokens.Length);
        Assert.All(tokens, t => Assert.InRange(t, 0, model.Config.VocabSize - 1));
    }

    [Fact]
    public void Quantize_CancelledMidway_LeavesNoFile()
    {
        using var dir = new TempModelFolder();
        string path = dir.Path("cancelled.gguf");
        using var cts = new CancellationTokenSource();
        var options = Options("Q8_0") with
        {
            // Cancelled inside the embedding, after its first chunk of rows: the rest of the tensor and file must not appear.
            Progress = new SyncProgress(p => { if (p.Tensor == "token_embd.weight" && p.Fraction > 0.01) cts.Cancel(); }),
        };
        Assert.ThrowsAny<OperationCanceledException>(() => GgufQuantizer.Quantize(F16, path, options, cts.Token));
        Assert.Empty(Directory.GetFileSystemEntries(dir.Dir));
    }

    [Fact]
    public void Quantize_ImatrixWithWrongWidth_FailsNamingTheTensorAndLeavesNoFile()
    {
        using var dir = new TempModelFolder();
        string path = dir.Path("bad.gguf");
        var imatrix = new ImportanceMatrix(new Dictionary<string, float[]> { ["blk.0.attn_q.weight"] = new float[100] }, "test.imatrix");
        var e = Assert.Throws<ArgumentException>(() => GgufQuantizer.Quantize(F16, path, Options("Q4_K_M") with { Imatrix = imatrix }));
        Assert.Contains("blk.0.attn_q.weight", e.Message);
        Assert.Empty(Directory.GetFileSystemEntries(dir.Dir));
    }

    [Fact]
    public void Quantize_WithImatrix_ChangesKQuantBlocksOnlyWhereWeightsGiven()
    {
        using var dir = new TempModelFolder();
        string path = dir.Path("imat.gguf");
        var weights = new float[256];
        for (int i = 0; i < 256; i++) weights[i] = i % 7 == 0 ? 50f : 0.1f;
        var imatrix = new ImportanceMatrix(new Dictionary<string, float[]> { ["blk.1.attn_q.weight"] = weights });
        var result = GgufQuantizer.Quantize(F16, path, Options("Q3_K_S") with
        {
            Imatrix = imatrix,
            Overrides = [TensorTypeOverride.Parse(@"^(token_embd|blk\.[2-7])\.=F16"), TensorTypeOverride.Parse(@"ffn=F16")],
        });
        using var ours = GgufFile.Open(path);
        var plain = RowEncoder.For(GgmlType.Q3_K);
        using var f16 = ModelLoader.Load(F16);
        var wq = f16.Weights.Layers[1].Wq;
        var row = new float[256];
        var bytes = new byte[110];
        wq.DequantizeRow(0, row);
        plain.Encode(row, bytes, default);
        var stored = ours.Tensor("blk.1.attn_q.weight").Span[..110].ToArray();
        Assert.NotEqual(bytes, stored);
        plain.Encode(row, bytes, weights);
        Assert.Equal(bytes, stored);
        Assert.Equal(GgmlType.Q3_K, ours.Tensor("blk.1.attn_k.weight").Type);
        Assert.Equal(GgmlType.F16, ours.Tensor("blk.1.ffn_up.weight").Type);
        Assert.Equal(GgmlType.F16, ours.Tensor("blk.5.attn_q.weight").Type);
    }

    [Fact]
    public void Quantize_QuantizedGgufSource_CopiesSameTypeBlocksAndRequantizesTheRest()
    {
        using var dir = new TempModelFolder();
        string path = dir.Path("requant.gguf");
        var result = GgufQuantizer.Quantize(Reference("Q8_0"), path, Options("Q8_0") with
        {
            Overrides = [TensorTypeOverride.Parse(@"blk\.0\.ffn_up=Q4_0")],
        });
        using var ours = GgufFile.Open(path);
        using var source = GgufFile.Open(Reference("Q8_0"));
        foreach (var t in source.Tensors.Where(t => t.Name != "blk.0.ffn_up.weight"))
            Assert.True(t.Span.SequenceEqual(ours.Tensor(t.Name).Span), $"tensor {t.Name} was not copied verbatim");
        Assert.Equal(GgmlType.Q4_0, ours.Tensor("blk.0.ffn_up.weight").Type);
        Assert.Equal("Q8_0", result.Tensors.Single(t => t.Tensor.Name == "blk.0.ffn_up.weight").Tensor.SourceType);
        using var model = ModelLoader.Load(path);
        Assert.Equal("mixed", model.Precision);
    }

    [Fact]
    public void Quantize_BadTypeName_ListsValidTypes()
    {
        var e = Assert.Throws<ArgumentException>(() => Options("Q4_K_XL"));
        Assert.Contains("Q4_K_M", e.Message);
        Assert.Contains("Q3_K_S", e.Message);
    }

    internal static int[] Greedy(LoadedModel loaded, string prompt, int count)
    {
        var model = new LlamaModel(loaded);
        var cache = model.CreateCache();
        var logits = new float[model.VocabSize];
        var ids = loaded.Tokenizer.Encode(prompt, addBos: true);
        model.Forward(cache, ids, logits);
        var result = new List<int>(ids);
        for (int i = 0; i < count; i++)
        {
            int next = Sampler.ArgMax(logits);
            result.Add(next);
            model.Forward(cache, new[] { next }, logits);
        }
        return result.ToArray();
    }

    internal static float[] LastLogits(LoadedModel loaded, string prompt)
    {
        var model = new LlamaModel(loaded);
        var logits = new float[model.VocabSize];
        model.Forward(model.CreateCache(), loaded.Tokenizer.Encode(prompt, addBos: true), logits);
        return logits;
    }

    private sealed class SyncProgress(Action<QuantizeProgress> report) : IProgress<QuantizeProgress>
    {
        public void Report(QuantizeProgress value)
        {
            lock (this) report(value);
        }
    }
}
