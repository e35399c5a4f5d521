using System.Text.Json;
using QuantServe.Engine.Formats.Safetensors;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Formats.HuggingFace;

/// <summary>
/// prose-15m relabelled as the other supported layouts (qwen2 with zero q/k/v biases, mistral, an untied head holding a
/// copy of the embedding): each is the same function, so each must still give the reference logits.
/// </summary>
public class HuggingFaceArchitectureTests
{
    private static float[] Logits(LoadedModel model, out int[] top5, out float[] top5Logits)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(SharedAssets.Path("models", "prose-15m", "reference.json")));
        var r = doc.RootElement.GetProperty("references")[1];
        var ids = r.GetProperty("input_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        top5 = r.GetProperty("last_top5_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        top5Logits = r.GetProperty("last_top5_logits").EnumerateArray().Select(e => e.GetSingle()).ToArray();
        var llama = new LlamaModel(model);
        var logits = new float[llama.VocabSize];
        llama.Forward(llama.CreateCache(), ids, logits);
        return logits;
    }

    private static void AssertReferenceLogits(LoadedModel model)
    {
        var logits = Logits(model, out var top5, out var top5Logits);
        for (int i = 0; i < 5; i++)
            Assert.True(Math.Abs(logits[top5[i]] - top5Logits[i]) <= 1e-2f, $"logit of {top5[i]} is {logits[top5[i]]}, reference {top5Logits[i]}");
    }

    /// <summary>Writes extra tensors into a new shard of <paramref name="temp"/> and lists them in the index.</summary>
    private static void AddShard(TempModelFolder temp, string shard, Action<SafetensorsWriter> add)
    {
        var writer = new SafetensorsWriter();
        add(writer);
        string path = temp.Path(shard);
        writer.Write(path);
        using var file = SafetensorsFile.Open(path);
        string entries = string.Concat(file.Tensors.Select(t => $"\"{t.Name}\": \"{shard}\","));
        temp.EditText(SafetensorsCheckpoint.IndexFileName, "\"weight_map\": {", "\"weight_map\": {" + entries);
    }

    [Fact]
    public void Load_Qwen2WithZeroBiases_HasBiasesAndReferenceLogits()
    {
        using var temp = new TempModelFolder(SharedAssets.Prose15m);
        temp.EditText("config.json", "\"model_type\": \"llama\"", "\"model_type\": \"qwen2\"");
        temp.EditText("config.json", "\"LlamaForCausalLM\"", "\"Qwen2ForCausalLM\"");
        AddShard(temp, "model-biases.safetensors", w =>
        {
            for (int l = 0; l < 8; l++)
                foreach (var (proj, width) in new[] { ("q", 256), ("k", 128), ("v", 128) })
                    w.Add($"model.layers.{l}.self_attn.{proj}_proj.bias", SafetensorsDType.F16, [width], new byte[2 * width]);
        });
        using var model = ModelLoader.Load(temp.Dir);
        Assert.Equal("qwen2", model.Config.Architecture);
        Assert.All(model.Weights.Layers, l => Assert.True(l.Bq!.Length == 256 && l.Bk!.Length == 128 && l.Bv!.Length == 128));
        AssertReferenceLogits(model);
    }

    [Fact]
    public void Load_MistralWithWideWindow_ReferenceLogits()
    {
        using var temp = new TempModelFolder(SharedAssets.Prose15m);
        temp.EditText("config.json", "\"model_type\": \"llama\"", "\"model_type\": \"mistral\", \"sliding_window\": 4096");
        temp.EditText("config.json", "\"LlamaForCausalLM\"", "\"MistralForCausalLM\"");
        using var model = ModelLoader.Load(temp.Dir);
        Assert.Equal("mistral", model.Config.Architecture);
        Assert.Equal(512, model.Config.ContextLength);
        Assert.All(model.Weights.Layers, l => Assert.Null(l.Bq));
        AssertReferenceLogits(model);
    }

    [Fact]
    public void Load_UntiedHead_UsesLmHeadTensor()
    {
        using var temp = new TempModelFolder(SharedAssets.Prose15m);
        temp.EditText("config.json", "\"tie_word_embeddings\": true", "\"tie_word_embeddings\": false");
        using (var source = SafetensorsCheckpoint.Open(SharedAssets.Prose15m))
        {
            var embedding = source.Find("model.embed_tokens.weight")!;
            var bytes = embedding.Bytes.ToArray();
            AddShard(temp, "model-head.safetensors", w => w.Add("lm_head.weight", SafetensorsDType.F16, embedding.Shape, bytes));
        }
        using var model = ModelLoader.Load(temp.Dir);
        Assert.False(model.Config.TiedEmbeddings);
        Assert.NotSame(model.Weights.TokenEmbedding, model.Weights.Output);
        Assert.Equal("lm_head.weight", model.Weights.Output.Name);
        Assert.Equal(14487808 + 32000 * 256, model.ParameterCount);
        AssertReferenceLogits(model);
    }

    [Fact]
    public void Load_UntiedConfigWithoutHead_FallsBackToTiedEmbedding()
    {
        using var temp = new TempModelFolder(SharedAssets.Prose15m);
        temp.EditText("config.json", "\"tie_word_embeddings\": true", "\"tie_word_embeddings\": false");
        using var model = ModelLoader.Load(temp.Dir);
        Assert.True(model.Config.TiedEmbeddings);
        Assert.Same(model.Weights.TokenEmbedding, model.Weights.Output);
    }

    [Fact]
    public void Load_Llama3RopeWithFactorOne_ReferenceLogits()
    {
        using var temp = new TempModelFolder(SharedAssets.Prose15m);
        temp.EditText("config.json", "\"rope_type\": \"default\"",
            "\"rope_type\": \"llama3\", \"factor\": 1.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 512");
        using var model = ModelLoader.Load(temp.Dir);
        Assert.All(model.Config.RopeFrequencyFactors!, f => Assert.Equal(1f, f));
        AssertReferenceLogits(model);
    }

    [Fact]
    public void Load_Llama3RopeWithFactor8_RotatesLowFrequenciesSlower()
    {
        // With a 4-token original context every wavelength of prose-15m's 16 pairs (the shortest is 2π) exceeds
        // original / low = 4, so every pair turns 8 times slower: the logits must move away from the reference.
        using var temp = new TempModelFolder(SharedAssets.Prose15m);
        temp.EditText("config.json", "\"rope_type\": \"default\"",
            "\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 4");
        using var model = ModelLoader.Load(temp.Dir);
        Assert.All(model.Config.RopeFrequencyFactors!, f => Assert.Equal(8f, f));
        var logits = Logits(model, out var top5, out var top5Logits);
        Assert.True(Enumerable.Range(0, 5).Max(i => Math.Abs(logits[top5[i]] - top5Logits[i])) > 0.05f);
    }
}
