using System.Buffers.Binary;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Formats.Llama2c;

/// <summary>stories260K's llama2.c checkpoint: what it describes, and clear errors for damaged copies.</summary>
public class Llama2cModelLoaderTests
{
    [Fact]
    public void Load_Stories260K_DescribesSharedClassifierModel()
    {
        using var model = ModelLoader.Load(SharedAssets.Stories260K);
        var c = model.Config;
        Assert.Equal((64, 172, 5, 8, 4, 8, 512, 512), (c.Dim, c.HiddenDim, c.Layers, c.Heads, c.KvHeads, c.HeadDim, c.VocabSize, c.ContextLength));
        Assert.True(c.TiedEmbeddings);
        Assert.Same(model.Weights.TokenEmbedding, model.Weights.Output);
        Assert.Equal("llama2c", model.SourceFormat);
        Assert.Equal(512, model.Tokenizer.VocabSize);
        Assert.Equal([1, 2], new[] { model.Tokenizer.BosId, model.Tokenizer.EosId });
    }

    [Fact]
    public void Load_CheckpointFileWithTokenizerBeside_LoadsSameModel()
    {
        using var model = ModelLoader.Load(SharedAssets.Path("models", "stories260K", "stories260K.bin"));
        Assert.Equal(64, model.Config.Dim);
    }

    public static TheoryData<string, string> Damages => new()
    {
        { "truncated", "truncated llama2.c checkpoint" },
        { "header-only", "truncated llama2.c checkpoint" },
        { "tiny", "truncated llama2.c checkpoint" },
        { "extra-bytes", "bytes more than its header's shape needs" },
        { "zero-heads", "implausible header" },
        { "huge-dim", "implausible" },
        { "kv-heads-not-divisor", "not a multiple of kv_heads" },
        { "negative-layers", "implausible" },
    };

    [Theory]
    [MemberData(nameof(Damages))]
    public void Load_DamagedCheckpoint_ThrowsNamingFileAndProblem(string damage, string expected)
    {
        using var folder = new TempModelFolder(SharedAssets.Stories260K);
        string path = folder.Own("stories260K.bin");
        byte[] bytes = File.ReadAllBytes(path);
        void SetHeader(int index, int value) => BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(index * 4), value);
        switch (damage)
        {
            case "truncated": bytes = bytes[..(bytes.Length / 2)]; break;
            case "header-only": bytes = bytes[..28]; break;
            case "tiny": bytes = bytes[..10]; break;
            case "extra-bytes": bytes = [.. bytes, 1, 2, 3, 4]; break;
            case "zero-heads": SetHeader(3, 0); break;
            case "huge-dim": SetHeader(0, 1 << 30); SetHeader(3, 1 << 20); break;
            case "kv-heads-not-divisor": SetHeader(4, 3); break;
            case "negative-layers": SetHeader(2, -5); break;
        }
        File.WriteAllBytes(path, bytes);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<ModelLoadException>(() => ModelLoader.Load(folder.Dir));
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 8 << 20, "a damaged header must not cause a large allocation");
        Assert.Contains("stories260K.bin", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Load_FolderWithoutTokenizer_ThrowsNamingMissingTokenizer()
    {
        using var folder = new TempModelFolder(SharedAssets.Stories260K);
        File.Delete(folder.Path("tok512.bin"));
        var e = Assert.Throws<ModelLoadException>(() => ModelLoader.Load(folder.Path("stories260K.bin")));
        Assert.Contains("tok*.bin", e.Message);
    }

    [Fact]
    public void Load_TruncatedTokenizer_ThrowsNamingTokenizerFile()
    {
        using var folder = new TempModelFolder(SharedAssets.Stories260K);
        string tok = folder.Own("tok512.bin");
        File.WriteAllBytes(tok, File.ReadAllBytes(tok)[..1000]);
        var e = Assert.Throws<ModelLoadException>(() => ModelLoader.Load(folder.Dir));
        Assert.Contains("tok512.bin", e.Message);
        Assert.Contains("truncated", e.Message);
    }
}
