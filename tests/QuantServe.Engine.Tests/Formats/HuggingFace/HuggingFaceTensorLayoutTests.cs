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
}
