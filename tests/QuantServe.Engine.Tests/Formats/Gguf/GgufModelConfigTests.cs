using QuantServe.Engine.Formats.Gguf;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Formats.Gguf;

public class GgufModelConfigTests
{
    [Theory]
    [MemberData(nameof(GgufFileTests.AllFiles), MemberType = typeof(GgufFileTests))]
    public void Read_ProseFile_HasProse15mHyperParameters(string name)
    {
        using var f = GgufFile.Open(Path.Combine(SharedAssets.Prose15mGguf, name));
        var c = GgufModelConfig.Read(f);
        Assert.Equal("llama", c.Architecture);
        Assert.Equal(256, c.Dim);
        Assert.Equal(768, c.HiddenDim);
        Assert.Equal(8, c.Layers);
        Assert.Equal(8, c.Heads);
        Assert.Equal(4, c.KvHeads);
        Assert.Equal(32, c.HeadDim);
        Assert.Equal(32000, c.VocabSize);
        Assert.Equal(512, c.ContextLength);
        Assert.Equal(10000f, c.RopeTheta);
        Assert.Equal(RopeStyle.Interleaved, c.Rope);
        Assert.Equal(1f, c.RopeScale);
        Assert.Equal(1e-5f, c.NormEps);
        Assert.True(c.TiedEmbeddings);
    }

    [Fact]
    public void Layout_ProseConfig_ListsEveryTensorOfTheFileWithItsShape()
    {
        using var f = GgufFile.Open(Path.Combine(SharedAssets.Prose15mGguf, "prose-15m-Q4_K_M.gguf"));
        var layout = GgufModelLoader.Layout(GgufModelConfig.Read(f)).Where(t => f.FindTensor(t.Name) != null).ToList();
        Assert.Equal(f.Tensors.Count, layout.Count);
        foreach (var (name, shape, _) in layout) Assert.Equal(shape, f.Tensor(name).Dimensions);
    }
}
