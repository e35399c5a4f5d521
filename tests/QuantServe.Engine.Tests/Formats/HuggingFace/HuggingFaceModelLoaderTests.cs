using System.Text.Json;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Formats.HuggingFace;

/// <summary>prose-15m loaded end to end and checked against reference.json (Hugging Face transformers, float32).</summary>
public class HuggingFaceModelLoaderTests : IClassFixture<HuggingFaceModelLoaderTests.Prose15m>
{
    /// <summary>One load of prose-15m and its references for the whole class.</summary>
    public sealed class Prose15m : IDisposable
    {
        public LoadedModel Model { get; } = ModelLoader.Load(SharedAssets.Prose15m);
        public IReadOnlyList<Reference> References { get; } = ReadReferences();
        public void Dispose() => Model.Dispose();
    }

    public sealed record Reference(string Prompt, int[] InputIds, int[] Top5Ids, float[] Top5Logits, float[] First16Logits, int[] GreedyIds);

    private static IReadOnlyList<Reference> ReadReferences()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(SharedAssets.Path("models", "prose-15m", "reference.json")));
        static int[] Ints(JsonElement e, string name) => e.GetProperty(name).EnumerateArray().Select(x => x.GetInt32()).ToArray();
        static float[] Floats(JsonElement e, string name) => e.GetProperty(name).EnumerateArray().Select(x => x.GetSingle()).ToArray();
        return doc.RootElement.GetProperty("references").EnumerateArray()
            .Select(r => new Reference(r.GetProperty("prompt").GetString()!, Ints(r, "input_ids"), Ints(r, "last_top5_ids"),
                Floats(r, "last_top5_logits"), Floats(r, "last_logits_first16"), Ints(r, "greedy_ids")))
            .ToList();
    }

    private readonly Prose15m _fixture;

    public HuggingFaceModelLoaderTests(Prose15m fixture) => _fixture = fixture;

    private LoadedModel Model => _fixture.Model;

    [Fact]
    public void Load_Prose15m_DescribesModelFromItsFiles()
    {
        Assert.Equal("safetensors", Model.SourceFormat);
        Assert.Equal(Path.GetFullPath(SharedAssets.Prose15m), Model.SourcePath);
        Assert.Equal(RopeStyle.Neox, Model.Config.Rope);
        Assert.True(Model.Config.TiedEmbeddings);
        Assert.Same(Model.Weights.TokenEmbedding, Model.Weights.Output);
        Assert.Equal("F16", Model.Precision);
        // model.safetensors.index.json's metadata: total_parameters 14487808, total_size 28975616 (all F16).
        Assert.Equal(14487808, Model.ParameterCount);
        long normFloats = Model.Weights.FinalNorm.Length + Model.Weights.Layers.Sum(l => l.AttnNorm.Length + l.FfnNorm.Length);
        Assert.Equal(28975616 + 2 * normFloats, Model.WeightBytes);
        Assert.Equal([2], Model.Generation.StopTokenIds);
        Assert.Null(Model.ChatTemplate);
        Assert.Equal("llama", Model.Metadata["config.model_type"]);
        Assert.Equal(32000, Model.Tokenizer.VocabSize);
        Assert.Equal(1, Model.Tokenizer.BosId);
    }

    [Fact]
    public void Load_Prose15m_MatricesViewMappedShardsInPlace()
    {
        var q = Model.Weights.Layers[2].Wq;
        Assert.Equal("model.layers.2.self_attn.q_proj.weight", q.Name);
        Assert.Equal((256, 256), (q.Rows, q.Cols));
        var row = new float[256];
        q.DequantizeRow(5, row);
        using var shard = QuantServe.Engine.Formats.Safetensors.SafetensorsCheckpoint.Open(SharedAssets.Prose15m);
        var halves = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, Half>(shard.Find(q.Name)!.Bytes);
        for (int c = 0; c < 256; c++) Assert.Equal((float)halves[5 * 256 + c], row[c]);
    }

    [Fact]
    public void Encode_Prose15mReferencePrompts_GivesReferenceInputIds()
    {
        foreach (var r in _fixture.References)
            Assert.Equal(r.InputIds, Model.Tokenizer.Encode(r.Prompt, addBos: true));
    }

    [Fact]
    public void Forward_Prose15mReferencePrompts_LastLogitsMatchTransformers()
    {
        var llama = new LlamaModel(Model);
        var logits = new float[llama.VocabSize];
        foreach (var r in _fixture.References)
        {
            llama.Forward(llama.CreateCache(), r.InputIds, logits);
            var top5 = Enumerable.Range(0, logits.Length).OrderByDescending(i => logits[i]).ThenBy(i => i).Take(5).ToArray();
            Assert.Equal(r.Top5Ids, top5);
            for (int i = 0; i < 5; i++)
                Assert.True(Math.Abs(logits[r.Top5Ids[i]] - r.Top5Logits[i]) <= 1e-2f, $"{r.Prompt}: logit of {r.Top5Ids[i]} is {logits[r.Top5Ids[i]]}, reference {r.Top5Logits[i]}");
            for (int i = 0; i < 16; i++)
                Assert.True(Math.Abs(logits[i] - r.First16Logits[i]) <= 1e-2f, $"{r.Prompt}: logit {i} is {logits[i]}, reference {r.First16Logits[i]}");
        }
    }

    [Fact]
    [Trait("Category", "Slow")]
    public void Greedy_Prose15mReferencePrompts_Match48TransformersIds()
    {
        var llama = new LlamaModel(Model);
        var logits = new float[llama.VocabSize];
        foreach (var r in _fixture.References)
            Assert.Equal(r.GreedyIds, Greedy(llama, r, logits));
    }

    [Fact]
    public void Greedy_Prose15mFirstReferencePrompt_First4TokensMatchTransformers()
    {
        var llama = new LlamaModel(Model);
        var r = _fixture.References[0];
        int length = r.InputIds.Length + 4;
        Assert.Equal(r.GreedyIds[..length], Greedy(llama, r, new float[llama.VocabSize], length));
    }

    /// <summary>Argmax decoding (lowest id on ties) up to <paramref name="length"/> ids (the reference's length by default).</summary>
    private static List<int> Greedy(LlamaModel llama, Reference r, float[] logits, int length = -1)
    {
        if (length < 0) length = r.GreedyIds.Length;
        var cache = llama.CreateCache();
        var ids = new List<int>(r.InputIds);
        llama.Forward(cache, r.InputIds, logits);
        while (ids.Count < length)
        {
            int next = 0;
            for (int i = 1; i < logits.Length; i++) if (logits[i] > logits[next]) next = i;
            ids.Add(next);
            if (ids.Count < length) llama.Forward(cache, new[] { next }, logits);
        }
        return ids;
    }
}
