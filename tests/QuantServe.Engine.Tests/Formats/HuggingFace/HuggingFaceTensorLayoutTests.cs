using QuantServe.Engine.Formats.HuggingFace;
using QuantServe.Engine.Formats.Safetensors;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Formats.HuggingFace;

public class HuggingFaceTensorLayoutTests
{
    [Fact]
    public void Check_Prose15m_EveryExpectedTensorHasItsShapeAndF16()
    {
        var hf = HuggingFaceConfig.Load(SharedAssets.Prose15m);
        using var checkpoint = SafetensorsCheckpoint.Open(SharedAssets.Prose15m);
        HuggingFaceTensorLayout.Check(checkpoint, hf);

        var expected = HuggingFaceTensorLayout.Expected(hf);
        Assert.Equal(1 + 8 * 9 + 1 + 1, expected.Count);
        foreach (var spec in expected.Where(s => s.Required))
        {
            var t = checkpoint.Find(spec.Name);
            Assert.True(t is not null, spec.Name);
            Assert.Equal(spec.Shape, t.Shape);
            Assert.Equal(SafetensorsDType.F16, t.DType);
        }
        Assert.Equal([32000L, 256L], checkpoint.Find("model.embed_tokens.weight")!.Shape);
        Assert.Equal([256L, 256L], checkpoint.Find("model.layers.3.self_attn.q_proj.weight")!.Shape);
        Assert.Equal([128L, 256L], checkpoint.Find("model.layers.3.self_attn.k_proj.weight")!.Shape);
        Assert.Equal([128L, 256L], checkpoint.Find("model.layers.3.self_attn.v_proj.weight")!.Shape);
        Assert.Equal([256L, 768L], checkpoint.Find("model.layers.3.mlp.down_proj.weight")!.Shape);
        Assert.Equal([768L, 256L], checkpoint.Find("model.layers.3.mlp.gate_proj.weight")!.Shape);
        // Every stored tensor is one the layout expects.
        Assert.Empty(checkpoint.Tensors.Keys.Except(expected.Select(s => s.Name)));
    }

    [Fact]
    public void Check_ConfigDisagreesWithTensors_ThrowsNamingTensorAndBothShapes()
    {
        using var temp = new TempModelFolder(SharedAssets.Prose15m);
        temp.EditText("config.json", "\"intermediate_size\": 768", "\"intermediate_size\": 1024");
        var hf = HuggingFaceConfig.Load(temp.Dir);
        using var checkpoint = SafetensorsCheckpoint.Open(temp.Dir);
        var e = Assert.Throws<ModelLoadException>(() => HuggingFaceTensorLayout.Check(checkpoint, hf));
        Assert.EndsWith("model-00002-of-00003.safetensors", e.File);
        Assert.Contains("model.layers.0.mlp.gate_proj.weight", e.Problem);
        Assert.Contains("[768, 256]", e.Problem);
        Assert.Contains("[1024, 256]", e.Problem);
    }

    [Fact]
    public void Check_FewerLayersInConfig_ThrowsNamingExtraLayer()
    {
        using var temp = new TempModelFolder(SharedAssets.Prose15m);
        temp.EditText("config.json", "\"num_hidden_layers\": 8", "\"num_hidden_layers\": 7");
        var hf = HuggingFaceConfig.Load(temp.Dir);
        using var checkpoint = SafetensorsCheckpoint.Open(temp.Dir);
        var e = Assert.Throws<ModelLoadException>(() => HuggingFaceTensorLayout.Check(checkpoint, hf));
        Assert.Contains("model.layers.7.", e.Problem);
        Assert.Contains("num_hidden_layers = 7", e.Problem);
    }

    [Fact]
    public void Check_MissingTensor_ThrowsNamingIt()
    {
        using var temp = new TempModelFolder(SharedAssets.Prose15m);
        temp.EditSafetensorsHeader("model-00003-of-00003.safetensors", h => h.Replace("\"model.norm.weight\"", "\"model.final_norm.weight\""));
        temp.EditText(SafetensorsCheckpoint.IndexFileName, "\"model.norm.weight\"", "\"model.final_norm.weight\"");
        var hf = HuggingFaceConfig.Load(temp.Dir);
        using var checkpoint = SafetensorsCheckpoint.Open(temp.Dir);
        var e = Assert.Throws<ModelLoadException>(() => HuggingFaceTensorLayout.Check(checkpoint, hf));
        Assert.Equal(temp.Dir, e.File);
        Assert.Contains("'model.norm.weight'", e.Problem);
        Assert.Contains("missing", e.Problem);
    }

    [Fact]
    public void Check_IntegerTensor_ThrowsNamingDType()
    {
        using var temp = new TempModelFolder(SharedAssets.Prose15m);
        temp.EditSafetensorsHeader("model-00003-of-00003.safetensors",
            h => h.Replace("\"dtype\":\"F16\",\"shape\":[256],\"data_offsets\":[787456", "\"dtype\":\"I16\",\"shape\":[256],\"data_offsets\":[787456"));
        var hf = HuggingFaceConfig.Load(temp.Dir);
        using var checkpoint = SafetensorsCheckpoint.Open(temp.Dir);
        var e = Assert.Throws<ModelLoadException>(() => HuggingFaceTensorLayout.Check(checkpoint, hf));
        Assert.Contains("model.norm.weight", e.Problem);
        Assert.Contains("I16", e.Problem);
    }

    [Fact]
    public void ToFloats_Prose15mNorm_MatchesHalfDecoding()
    {
        using var checkpoint = SafetensorsCheckpoint.Open(SharedAssets.Prose15m);
        var norm = checkpoint.Find("model.norm.weight")!;
        float[] floats = HuggingFaceModelLoader.ToFloats(norm);
        var halves = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, Half>(norm.Bytes);
        Assert.Equal(256, floats.Length);
        for (int i = 0; i < floats.Length; i++) Assert.Equal((float)halves[i], floats[i]);
        Assert.Contains(floats, f => f != floats[0]);
    }

    /// <summary>prose-15m relabelled as qwen2, optionally with q/k/v biases in an extra shard listed by the index.</summary>
    private static TempModelFolder Qwen2Copy(bool withBiases)
    {
        var temp = new TempModelFolder(SharedAssets.Prose15m);
        temp.EditText("config.json", "\"model_type\": \"llama\"", "\"model_type\": \"qwen2\"");
        temp.EditText("config.json", "\"LlamaForCausalLM\"", "\"Qwen2ForCausalLM\"");
        if (withBiases)
        {
            var writer = new SafetensorsWriter();
            var entries = new List<string>();
            for (int l = 0; l < 8; l++)
                foreach (var (proj, width) in new[] { ("q", 256), ("k", 128), ("v", 128) })
                {
                    string name = $"model.layers.{l}.self_attn.{proj}_proj.bias";
                    writer.Add(name, [width], Enumerable.Range(0, width).Select(i => l + i / 1000f).ToArray());
                    entries.Add($"\"{name}\": \"model-biases.safetensors\",");
                }
            writer.Write(temp.Path("model-biases.safetensors"));
            temp.EditText(SafetensorsCheckpoint.IndexFileName, "\"weight_map\": {", "\"weight_map\": {" + string.Join("", entries));
        }
        return temp;
    }

    [Fact]
    public void Check_Qwen2WithoutBiases_ThrowsNamingBias()
    {
        using var temp = Qwen2Copy(withBiases: false);
        var hf = HuggingFaceConfig.Load(temp.Dir);
        using var checkpoint = SafetensorsCheckpoint.Open(temp.Dir);
        var e = Assert.Throws<ModelLoadException>(() => HuggingFaceTensorLayout.Check(checkpoint, hf));
        Assert.Contains("'model.layers.0.self_attn.q_proj.bias'", e.Problem);
        Assert.Contains("[256]", e.Problem);
    }

    [Fact]
    public void Check_Qwen2WithBiases_PassesAndBiasesReadAsF32()
    {
        using var temp = Qwen2Copy(withBiases: true);
        var hf = HuggingFaceConfig.Load(temp.Dir);
        using var checkpoint = SafetensorsCheckpoint.Open(temp.Dir);
        HuggingFaceTensorLayout.Check(checkpoint, hf);
        var bk = HuggingFaceModelLoader.ToFloats(checkpoint.Find("model.layers.3.self_attn.k_proj.bias")!);
        Assert.Equal(128, bk.Length);
        Assert.Equal(3 + 127 / 1000f, bk[127]);
    }

    [Fact]
    public void ToFloats_Bf16Tensor_ShiftsBitsIntoSingle()
    {
        using var temp = new TempModelFolder();
        float[] values = [1f, -2.5f, 0.15625f, 3.0e38f, -0f];
        var bf16 = values.SelectMany(v => BitConverter.GetBytes((ushort)(BitConverter.SingleToInt32Bits(v) >>> 16))).ToArray();
        var writer = new SafetensorsWriter();
        writer.Add("x", SafetensorsDType.BF16, [values.Length], bf16);
        writer.Write(temp.Path("x.safetensors"));
        using var file = SafetensorsFile.Open(temp.Path("x.safetensors"));
        var floats = HuggingFaceModelLoader.ToFloats(file.Find("x")!);
        // bfloat16 keeps the top 16 bits: these values are exact except 3e38, which loses mantissa bits.
        Assert.Equal([1f, -2.5f, 0.15625f], floats[..3]);
        Assert.Equal(BitConverter.SingleToInt32Bits(3.0e38f) & ~0xFFFF, BitConverter.SingleToInt32Bits(floats[3]));
        Assert.True(float.IsNegative(floats[4]) && floats[4] == 0);
    }
}
