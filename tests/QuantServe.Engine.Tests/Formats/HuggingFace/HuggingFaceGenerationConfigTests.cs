using QuantServe.Engine.Formats.HuggingFace;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Formats.HuggingFace;

public class HuggingFaceGenerationConfigTests
{
    [Fact]
    public void Load_Prose15m_StopsAtEosAndSpecifiesNoSampling()
    {
        var g = HuggingFaceGenerationConfig.Load(SharedAssets.Prose15m, []);
        Assert.Equal([2], g.StopTokenIds);
        Assert.Null(g.Temperature);
        Assert.Null(g.TopP);
        Assert.Null(g.TopK);
    }

    [Fact]
    public void Load_EosListAndSampling_ReadsThem()
    {
        using var temp = new TempModelFolder(SharedAssets.Prose15m);
        temp.EditText("generation_config.json", "\"eos_token_id\": 2,",
            "\"eos_token_id\": [2, 7, 2], \"do_sample\": true, \"temperature\": 0.6, \"top_p\": 0.9, \"top_k\": 20,");
        var g = HuggingFaceGenerationConfig.Load(temp.Dir, [99]);
        Assert.Equal([2, 7], g.StopTokenIds);
        Assert.Equal(0.6f, g.Temperature);
        Assert.Equal(0.9f, g.TopP);
        Assert.Equal(20, g.TopK);
    }

    [Fact]
    public void Load_DoSampleFalse_MeansGreedy()
    {
        using var temp = new TempModelFolder(SharedAssets.Prose15m);
        temp.EditText("generation_config.json", "\"eos_token_id\": 2,", "\"eos_token_id\": 2, \"do_sample\": false, \"temperature\": 0.6,");
        Assert.Equal(0f, HuggingFaceGenerationConfig.Load(temp.Dir, []).Temperature);
    }

    [Fact]
    public void Load_NoFile_FallsBackToConfigEos()
    {
        using var temp = new TempModelFolder(SharedAssets.Prose15m);
        File.Delete(temp.Path("generation_config.json"));
        Assert.Equal([2], HuggingFaceGenerationConfig.Load(temp.Dir, [2]).StopTokenIds);
    }

    [Fact]
    public void Load_BadEos_ThrowsNamingFile()
    {
        using var temp = new TempModelFolder(SharedAssets.Prose15m);
        temp.EditText("generation_config.json", "\"eos_token_id\": 2,", "\"eos_token_id\": \"</s>\",");
        var e = Assert.Throws<ModelLoadException>(() => HuggingFaceGenerationConfig.Load(temp.Dir, []));
        Assert.Equal(temp.Path("generation_config.json"), e.File);
        Assert.Contains("eos_token_id", e.Problem);
    }
}
