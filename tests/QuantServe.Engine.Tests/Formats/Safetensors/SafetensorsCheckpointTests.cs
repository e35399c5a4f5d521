using QuantServe.Engine.Formats.Safetensors;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Formats.Safetensors;

public class SafetensorsCheckpointTests
{
    [Fact]
    public void Open_Prose15mIndex_FindsEveryTensorInItsShard()
    {
        using var checkpoint = SafetensorsCheckpoint.Open(SharedAssets.Prose15m);
        Assert.Equal(3, checkpoint.Files.Count);
        // 1 embedding + 8 layers × 9 tensors + final norm; the head is tied and not stored.
        Assert.Equal(1 + 8 * 9 + 1, checkpoint.Tensors.Count);
        Assert.EndsWith("model-00001-of-00003.safetensors", checkpoint.Find("model.embed_tokens.weight")!.File.Path);
        Assert.EndsWith("model-00003-of-00003.safetensors", checkpoint.Find("model.norm.weight")!.File.Path);
        Assert.Null(checkpoint.Find("lm_head.weight"));
        // The index's total_size is the sum of the tensors' bytes.
        Assert.Equal(28975616, checkpoint.Tensors.Values.Sum(t => t.ByteLength));
    }

    [Fact]
    public void Open_MissingShard_ThrowsNamingIt()
    {
        using var temp = new TempModelFolder(SharedAssets.Prose15m);
        File.Delete(temp.Path("model-00002-of-00003.safetensors"));
        var e = Assert.Throws<ModelLoadException>(() => SafetensorsCheckpoint.Open(temp.Dir));
        Assert.Equal(temp.Path(SafetensorsCheckpoint.IndexFileName), e.File);
        Assert.Contains("shard model-00002-of-00003.safetensors", e.Problem);
        Assert.Contains("missing", e.Problem);
    }

    [Fact]
    public void Open_IndexPlacesTensorInWrongShard_Throws()
    {
        using var temp = new TempModelFolder(SharedAssets.Prose15m);
        temp.EditText(SafetensorsCheckpoint.IndexFileName,
            "\"model.norm.weight\": \"model-00003-of-00003.safetensors\"", "\"model.norm.weight\": \"model-00002-of-00003.safetensors\"");
        var e = Assert.Throws<ModelLoadException>(() => SafetensorsCheckpoint.Open(temp.Dir));
        Assert.Contains("model.norm.weight", e.Problem);
        Assert.Contains("model-00002-of-00003.safetensors", e.Message);
    }

    [Fact]
    public void Open_IndexNamesPathOutsideFolder_Throws()
    {
        using var temp = new TempModelFolder(SharedAssets.Prose15m);
        temp.EditText(SafetensorsCheckpoint.IndexFileName,
            "\"model.norm.weight\": \"model-00003-of-00003.safetensors\"", "\"model.norm.weight\": \"../model-00003-of-00003.safetensors\"");
        var e = Assert.Throws<ModelLoadException>(() => SafetensorsCheckpoint.Open(temp.Dir));
        Assert.Contains("not a plain file name", e.Problem);
    }

    [Fact]
    public void Open_MalformedIndex_ThrowsNamingIndex()
    {
        using var temp = new TempModelFolder(SharedAssets.Prose15m);
        temp.EditText(SafetensorsCheckpoint.IndexFileName, "\"weight_map\": {", "\"weight_map\": {{");
        var e = Assert.Throws<ModelLoadException>(() => SafetensorsCheckpoint.Open(temp.Dir));
        Assert.Equal(temp.Path(SafetensorsCheckpoint.IndexFileName), e.File);
        Assert.Contains("malformed JSON", e.Problem);
    }

    [Fact]
    public void Open_TruncatedShard_ThrowsNamingShard()
    {
        using var temp = new TempModelFolder(SharedAssets.Prose15m);
        string shard = temp.Own("model-00001-of-00003.safetensors");
        using (var s = new FileStream(shard, FileMode.Open)) s.SetLength(s.Length / 2);
        var e = Assert.Throws<ModelLoadException>(() => SafetensorsCheckpoint.Open(temp.Dir));
        Assert.Equal(shard, e.File);
        Assert.Contains("model.embed_tokens.weight", e.Problem);
    }

    [Fact]
    public void Open_SingleFileWrittenByWriter_FindsTensors()
    {
        using var temp = new TempModelFolder();
        var writer = new SafetensorsWriter();
        writer.Add("a", [2], new float[] { 1, 2 });
        writer.Write(temp.Path(SafetensorsCheckpoint.SingleFileName));
        using var checkpoint = SafetensorsCheckpoint.Open(temp.Dir);
        Assert.Single(checkpoint.Files);
        Assert.Equal(8, checkpoint.Find("a")!.ByteLength);
    }

    [Fact]
    public void Open_FolderWithoutWeights_ThrowsNamingFolder()
    {
        using var temp = new TempModelFolder();
        File.WriteAllBytes(temp.Path("pytorch_model.bin"), [0]);
        var e = Assert.Throws<ModelLoadException>(() => SafetensorsCheckpoint.Open(temp.Dir));
        Assert.Equal(temp.Dir, e.File);
        Assert.Contains("model.safetensors", e.Problem);
        Assert.Contains("PyTorch", e.Problem);
    }
}
