using System.Buffers.Binary;
using System.Text;
using QuantServe.Engine.Formats.HuggingFace;
using QuantServe.Engine.Formats.Safetensors;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tests.TestSupport;
using QuantServe.Engine.Tokenization.HuggingFace;

namespace QuantServe.Engine.Tests.Fuzzing;

/// <summary>
/// Fuzzing bug 1: System.Text.Json parses a string escape of an unpaired UTF-16 surrogate (<c>"\ud800"</c>) and throws
/// InvalidOperationException only when the string is decoded, which escaped from every JSON reader. Each case is the
/// minimal mutant that reached one reader; each must now be a ModelLoadException naming the file.
/// </summary>
public class JsonSurrogateRegressionTests
{
    private const string Lone = "\\ud800";

    [Fact]
    public void SafetensorsOpen_TensorNameWithUnpairedSurrogate_ThrowsModelLoadException()
    {
        using var dir = new TempModelFolder();
        string path = dir.Path("model.safetensors");
        var header = Encoding.UTF8.GetBytes($"{{\"{Lone}\":{{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}}}");
        var bytes = new byte[8 + header.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)header.Length);
        header.CopyTo(bytes, 8);
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<ModelLoadException>(() => SafetensorsFile.Open(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("malformed JSON header", e.Problem);
    }

    [Fact]
    public void SafetensorsCheckpointOpen_WeightMapShardWithUnpairedSurrogate_ThrowsModelLoadException()
    {
        using var dir = new TempModelFolder();
        string index = dir.Path(SafetensorsCheckpoint.IndexFileName);
        File.WriteAllText(index, $"{{\"weight_map\":{{\"model.norm.weight\":\"{Lone}\"}}}}");
        var e = Assert.Throws<ModelLoadException>(() => SafetensorsCheckpoint.Open(dir.Dir));
        Assert.Equal(index, e.File);
        Assert.Contains("malformed JSON", e.Problem);
    }

    [Fact]
    public void HuggingFaceConfigLoad_EosTokenIdUnpairedSurrogate_ThrowsModelLoadException()
    {
        using var dir = new TempModelFolder(SharedAssets.Prose15m);
        dir.EditText("config.json", "\"eos_token_id\": 2", $"\"eos_token_id\": \"{Lone}\"");
        var e = Assert.Throws<ModelLoadException>(() => HuggingFaceConfig.Load(dir.Dir));
        Assert.Equal(dir.Path("config.json"), e.File);
    }

    [Fact]
    public void HuggingFaceConfigParse_ModelTypeUnpairedSurrogate_ThrowsModelLoadException()
    {
        var e = Assert.Throws<ModelLoadException>(() => HuggingFaceConfig.Parse("/m/config.json", $"{{\"model_type\":\"{Lone}\"}}"));
        Assert.Equal("/m/config.json", e.File);
    }

    [Fact]
    public void HfTokenizerJsonFromJson_MergeUnpairedSurrogate_ThrowsModelLoadException()
    {
        string json = $"{{\"model\":{{\"type\":\"BPE\",\"vocab\":{{\"a\":0}},\"merges\":[[\"{Lone}\",\"a\"]]}}}}";
        var e = Assert.Throws<ModelLoadException>(() => HfTokenizerJson.FromJson(json, null, "/m/tokenizer.json"));
        Assert.Equal("/m/tokenizer.json", e.File);
    }

    [Fact]
    public void HfTokenizerJsonFromJson_ConfigBosTokenUnpairedSurrogate_NamesTokenizerConfig()
    {
        string json = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}";
        var e = Assert.Throws<ModelLoadException>(() =>
            HfTokenizerJson.FromJson(json, $"{{\"bos_token\":\"{Lone}\"}}", "/m/tokenizer.json", "/m/tokenizer_config.json"));
        Assert.Equal("/m/tokenizer_config.json", e.File);
    }

    [Fact]
    public void HuggingFaceChatTemplateLoad_TemplateUnpairedSurrogate_ThrowsModelLoadException()
    {
        using var dir = new TempModelFolder();
        File.WriteAllText(dir.Path("tokenizer_config.json"), $"{{\"chat_template\":\"{Lone}\"}}");
        var e = Assert.Throws<ModelLoadException>(() => HuggingFaceChatTemplate.Load(dir.Dir));
        Assert.Equal(dir.Path("tokenizer_config.json"), e.File);
    }
}
