using System.Text.Json;
using QuantServe.Engine.Formats.Gguf;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tensors;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Formats.Gguf;

public class GgufModelLoaderEndToEndTests
{
    private static readonly string F16 = Path.Combine(SharedAssets.Prose15mGguf, "prose-15m-f16.gguf");

    [Fact]
    public void Load_ProseF16_BuildsTiedLlamaWithF16MatricesAndItsVocabulary()
    {
        using var model = ModelLoader.Load(F16);
        Assert.Equal("gguf", model.SourceFormat);
        Assert.Equal(Path.GetFullPath(F16), model.SourcePath);
        Assert.Equal((256, 768, 8, 8, 4, 32, 32000), (model.Config.Dim, model.Config.HiddenDim, model.Config.Layers,
            model.Config.Heads, model.Config.KvHeads, model.Config.HeadDim, model.Config.VocabSize));
        Assert.True(model.Config.TiedEmbeddings);
        Assert.Same(model.Weights.TokenEmbedding, model.Weights.Output);
        Assert.Equal("F16", model.Precision);
        Assert.Equal(14_487_808, model.ParameterCount); // llama-bench: 14.49 M
        var layer = model.Weights.Layers[7];
        Assert.Equal((256, 256), (layer.Wq.Rows, layer.Wq.Cols));
        Assert.Equal((128, 256), (layer.Wk.Rows, layer.Wk.Cols));
        Assert.Equal((256, 768), (layer.Down.Rows, layer.Down.Cols));
        Assert.Equal((768, 256), (layer.Gate.Rows, layer.Gate.Cols));
        Assert.Null(layer.Bq);
        Assert.Equal([2], model.Generation.StopTokenIds);
        Assert.Null(model.ChatTemplate);
        Assert.Equal("prose", model.Metadata["general.name"]);
        Assert.Equal("llama", model.Metadata["general.architecture"]);
        Assert.Equal([1, 512, 278, 6763, 4177, 2825], model.Tokenizer.Encode("In the beginning God created", addBos: true));
    }

    [Fact]
    public unsafe void Load_ProseF16_MatricesAndNormsAreTheFileBytes()
    {
        using var file = GgufFile.Open(F16);
        using var model = ModelLoader.Load(F16);
        // Row r of a [cols, rows] GGUF tensor starts r × cols elements into its data.
        var q = file.Tensor("blk.2.attn_q.weight");
        var row = new float[256];
        model.Weights.Layers[2].Wq.DequantizeRow(37, row);
        var stored = new ReadOnlySpan<Half>(q.Data, 256 * 256).Slice(37 * 256, 256);
        for (int i = 0; i < 256; i++) Assert.Equal((float)stored[i], row[i]);
        Assert.Equal(new ReadOnlySpan<float>(file.Tensor("blk.4.ffn_norm.weight").Data, 256).ToArray(), model.Weights.Layers[4].FfnNorm);
        Assert.Equal(new ReadOnlySpan<float>(file.Tensor("output_norm.weight").Data, 256).ToArray(), model.Weights.FinalNorm);
        Assert.Contains(model.Weights.FinalNorm, v => v != 0 && v != 1);
    }

    [Theory]
    [MemberData(nameof(GgufFileTests.AllFiles), MemberType = typeof(GgufFileTests))]
    public void Load_EveryProseFile_LoadsOrNamesTheTensorWithoutKernels(string name)
    {
        string path = Path.Combine(SharedAssets.Prose15mGguf, name);
        using var file = GgufFile.Open(path);
        var missing = file.Tensors.FirstOrDefault(t => t.Dimensions.Count == 2 && TensorFormats.ForGgml(t.Type) is null);
        if (missing is null)
        {
            using var model = ModelLoader.Load(path);
            Assert.Equal(57, model.Weights.Matrices.Count());
            Assert.All(model.Weights.Matrices, m => Assert.Equal(file.Tensor(m.Name).Type, m.Format.Ggml));
        }
        else
        {
            var ex = Assert.Throws<ModelLoadException>(() => ModelLoader.Load(path).Dispose());
            Assert.Contains($"is stored as {missing.Type}, which QuantServe has no kernels for", ex.Message);
        }
    }

    [Fact]
    public void Load_Qwen2WithAttentionBiases_UsesNeoxRopeAndReadsBiases()
    {
        using var dir = new TempDir();
        string path = dir.File("qwen2.gguf");
        using (var source = GgufFile.Open(F16))
        {
            var w = GgufModelLoaderTests.Relabel(source, "qwen2");
            for (int l = 0; l < 8; l++)
            {
                int layer = l;
                w.AddTensor($"blk.{l}.attn_q.bias", [256], GgmlType.F32, s => WriteFloats(s, 256, i => layer + i / 1000f));
                w.AddTensor($"blk.{l}.attn_k.bias", [128], GgmlType.F16, s => WriteHalves(s, 128, i => -i / 64f));
                w.AddTensor($"blk.{l}.attn_v.bias", [128], GgmlType.BF16, s => WriteBf16(s, 128, i => i * 0.5f));
            }
            w.Write(path);
        }
        using var model = ModelLoader.Load(path);
        Assert.Equal("qwen2", model.Config.Architecture);
        Assert.Equal(RopeStyle.Neox, model.Config.Rope);
        var l3 = model.Weights.Layers[3];
        Assert.Equal(3 + 17 / 1000f, l3.Bq![17]);
        Assert.Equal(-5 / 64f, l3.Bk![5]);
        Assert.Equal(60.5f, l3.Bv![121]);
        Assert.Equal(14_487_808 + 8 * 512, model.ParameterCount);
    }

    public static TheoryData<int> ReferenceIndices() => new(Enumerable.Range(0, 4));

    private static JsonElement Reference(int index)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(SharedAssets.Prose15m, "reference.json")));
        return doc.RootElement.GetProperty("references")[index].Clone();
    }

    private static int[] Ints(JsonElement r, string k) => r.GetProperty(k).EnumerateArray().Select(e => e.GetInt32()).ToArray();

    // transformers ran the same fp16 weights in float32; the GGUF stores q/k rows permuted for interleaved RoPE, so
    // matching its logits checks the loader's shapes, layout and RoPE style together.
    [Theory]
    [MemberData(nameof(ReferenceIndices))]
    public void Forward_ProseF16Gguf_MatchesTransformersLastLogits(int index)
    {
        var r = Reference(index);
        using var loaded = ModelLoader.Load(F16);
        var model = new LlamaModel(loaded, maxBatchTokens: 16);
        var ids = Ints(r, "input_ids");
        var logits = new float[model.VocabSize];
        model.Forward(model.CreateCache(64), ids, logits);
        var first16 = r.GetProperty("last_logits_first16").EnumerateArray().Select(e => e.GetSingle()).ToArray();
        for (int i = 0; i < 16; i++) Assert.True(Math.Abs(first16[i] - logits[i]) < 2e-3f, $"logit {i}: {logits[i]} vs {first16[i]}");
        var top5 = logits.Select((v, i) => (v, i)).OrderByDescending(p => p.v).Take(5).Select(p => p.i).ToArray();
        Assert.Equal(Ints(r, "last_top5_ids"), top5);
    }

    [Theory]
    [MemberData(nameof(ReferenceIndices))]
    [Trait("Category", "Slow")]
    public void Generate_ProseF16Gguf_MatchesTransformersGreedyIds(int index)
    {
        var r = Reference(index);
        using var loaded = ModelLoader.Load(F16);
        var ids = Ints(r, "input_ids");
        var greedy = Ints(r, "greedy_ids");
        var generated = new TextGenerator(loaded, maxBatchTokens: 16).Generate(ids, new GenerationOptions
        {
            MaxTokens = greedy.Length - ids.Length, Sampling = SamplingOptions.Greedy, IgnoreEos = true,
        }).Select(t => t.Token);
        Assert.Equal(greedy, ids.Concat(generated));
    }

    private static void WriteFloats(Stream s, int n, Func<int, float> f)
    {
        for (int i = 0; i < n; i++) s.Write(BitConverter.GetBytes(f(i)));
    }

    private static void WriteHalves(Stream s, int n, Func<int, float> f)
    {
        for (int i = 0; i < n; i++) s.Write(BitConverter.GetBytes((Half)f(i)));
    }

    private static void WriteBf16(Stream s, int n, Func<int, float> f)
    {
        for (int i = 0; i < n; i++) s.Write(BitConverter.GetBytes((ushort)(BitConverter.SingleToUInt32Bits(f(i)) >> 16)));
    }
}
