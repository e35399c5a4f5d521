using QuantServe.Engine.Formats.Safetensors;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Formats.HuggingFace;

/// <summary>Damaged copies of prose-15m through the public entry point: each must fail with a ModelLoadException naming file and problem.</summary>
public class HuggingFaceModelLoaderErrorTests
{
    private static ModelLoadException LoadFails(Action<TempModelFolder> damage, out TempModelFolder folder)
    {
        folder = new TempModelFolder(SharedAssets.Prose15m);
        damage(folder);
        var dir = folder.Dir;
        return Assert.Throws<ModelLoadException>(() => ModelLoader.Load(dir));
    }

    [Fact]
    public void Load_TruncatedShard_NamesShardAndTensor()
    {
        var e = LoadFails(t =>
        {
            using var s = new FileStream(t.Own("model-00002-of-00003.safetensors"), FileMode.Open);
            s.SetLength(s.Length - 4096);
        }, out var folder);
        using (folder)
        {
            Assert.Equal(folder.Path("model-00002-of-00003.safetensors"), e.File);
            Assert.Contains("beyond the end of the data section", e.Problem);
        }
    }

    [Fact]
    public void Load_MissingShard_NamesIt()
    {
        var e = LoadFails(t => File.Delete(t.Path("model-00003-of-00003.safetensors")), out var folder);
        using (folder) Assert.Contains("model-00003-of-00003.safetensors", e.Problem);
    }

    [Fact]
    public void Load_HeaderLengthBeyondFile_NamesShard()
    {
        var e = LoadFails(t =>
        {
            using var s = new FileStream(t.Own("model-00001-of-00003.safetensors"), FileMode.Open);
            s.Write(BitConverter.GetBytes(20_000_000UL));
        }, out var folder);
        using (folder)
        {
            Assert.Equal(folder.Path("model-00001-of-00003.safetensors"), e.File);
            Assert.Contains("header length 20000000", e.Problem);
        }
    }

    [Fact]
    public void Load_ConfigShapeMismatch_NamesTensorAndShapes()
    {
        var e = LoadFails(t => t.EditText("config.json", "\"num_key_value_heads\": 4", "\"num_key_value_heads\": 8"), out var folder);
        using (folder)
        {
            Assert.Contains("model.layers.0.self_attn.k_proj.weight", e.Problem);
            Assert.Contains("[128, 256]", e.Problem);
            Assert.Contains("[256, 256]", e.Problem);
        }
    }

    [Fact]
    public void Load_UnknownArchitecture_NamesConfig()
    {
        var e = LoadFails(t => t.EditText("config.json", "\"model_type\": \"llama\"", "\"model_type\": \"falcon\""), out var folder);
        using (folder)
        {
            Assert.Equal(folder.Path("config.json"), e.File);
            Assert.Contains("unknown architecture", e.Problem);
        }
    }

    [Fact]
    public void Load_MissingConfigField_NamesField()
    {
        var e = LoadFails(t => t.EditText("config.json", "\"intermediate_size\": 768,", ""), out var folder);
        using (folder)
        {
            Assert.Equal(folder.Path("config.json"), e.File);
            Assert.Contains("\"intermediate_size\" is missing", e.Problem);
        }
    }

    [Fact]
    public void Load_NoWeights_NamesFolder()
    {
        var e = LoadFails(t =>
        {
            File.Delete(t.Path(SafetensorsCheckpoint.IndexFileName));
            foreach (var f in Directory.GetFiles(t.Dir, "*.safetensors")) File.Delete(f);
        }, out var folder);
        using (folder)
        {
            Assert.Equal(folder.Dir, e.File);
            Assert.Contains("model.safetensors", e.Problem);
        }
    }
}
