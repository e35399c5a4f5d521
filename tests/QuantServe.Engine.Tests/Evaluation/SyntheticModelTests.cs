using System.Security.Cryptography;
using QuantServe.Engine.Evaluation;
using QuantServe.Engine.Formats.Llama2c;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Evaluation;

public class SyntheticModelTests
{
    private static readonly ModelConfig Small = SyntheticModel.TinyLlama with
    {
        Dim = 128, HiddenDim = 352, Layers = 2, Heads = 8, KvHeads = 2, HeadDim = 16, VocabSize = 512, ContextLength = 128,
    };

    [Fact]
    public void WriteGguf_SmallShape_LoadsWithThatShapeRealisticScaleAndRuns()
    {
        using var folder = new TempModelFolder();
        string path = folder.Path("synthetic.gguf");
        var tokenizer = Llama2cTokenizerFile.Read(SharedAssets.Path("models", "stories260K", "tok512.bin"), 512);
        SyntheticModel.WriteGguf(path, Small, tokenizer, seed: 7);

        using var model = ModelLoader.Load(path);
        var c = model.Config;
        Assert.Equal((128, 352, 2, 8, 2, 16, 512, false), (c.Dim, c.HiddenDim, c.Layers, c.Heads, c.KvHeads, c.HeadDim, c.VocabSize, c.TiedEmbeddings));
        Assert.Equal("F16", model.Precision);
        var row = new float[c.Dim * 64];
        for (int r = 0; r < 64; r++) model.Weights.Layers[1].Wq.DequantizeRow(r, row.AsSpan(r * c.Dim, c.Dim));
        double std = Math.Sqrt(row.Select(v => (double)v * v).Average());
        Assert.InRange(std, 0.018, 0.022);

        var llama = new LlamaModel(model);
        var logits = new float[c.VocabSize];
        llama.Forward(llama.CreateCache(16), new[] { 1, 5, 9 }, logits);
        Assert.All(logits, v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void WriteGguf_SameSeed_SameBytesOtherSeedDifferent()
    {
        using var folder = new TempModelFolder();
        var tokenizer = Llama2cTokenizerFile.Read(SharedAssets.Path("models", "stories260K", "tok512.bin"), 512);
        string Hash(string name, ulong seed)
        {
            string p = folder.Path(name);
            SyntheticModel.WriteGguf(p, Small, tokenizer, seed);
            using var s = File.OpenRead(p);
            return Convert.ToHexString(SHA256.HashData(s));
        }
        Assert.Equal(Hash("a.gguf", 3), Hash("b.gguf", 3));
        Assert.NotEqual(Hash("a.gguf", 3), Hash("c.gguf", 4));
    }
}
