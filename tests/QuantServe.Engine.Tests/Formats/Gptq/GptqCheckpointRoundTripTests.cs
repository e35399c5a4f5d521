using System.Runtime.InteropServices;
using QuantServe.Engine.Formats.Gptq;
using QuantServe.Engine.Formats.Safetensors;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;
using QuantServe.Engine.Quantization.Calibration;
using QuantServe.Engine.Quantization.Methods;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Formats.Gptq;

public class GptqCheckpointRoundTripTests
{
    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(8)]
    public void PackWeightAndZeros_RandomValues_UnpackToTheSameValues(int bits)
    {
        var rng = new Random(bits);
        int outF = 64, inF = 96, groups = 3, maxq = (1 << bits) - 1;
        var codes = new byte[outF * inF];
        for (int i = 0; i < codes.Length; i++) codes[i] = (byte)rng.Next(maxq + 1);
        var zeros = new int[outF * groups];
        for (int i = 0; i < zeros.Length; i++) zeros[i] = rng.Next(maxq + 1);
        var qw = GptqPacking.PackWeight(codes, outF, inF, bits);
        Assert.Equal(inF * bits / 32 * outF, qw.Length);
        Assert.Equal(codes, GptqPacking.UnpackWeight(qw, outF, inF, bits));
        foreach (bool v1 in new[] { true, false })
            Assert.Equal(zeros, GptqPacking.UnpackZeros(GptqPacking.PackZeros(zeros, outF, groups, bits, v1), outF, groups, bits, v1));
    }

    [Fact]
    public void PackStream_ThreeBits_ValueTenStraddlesTheFirstWordBoundary()
    {
        var values = new int[32];
        values[10] = 0b101; // bits 30, 31 of word 0 get 01, bit 0 of word 1 gets 1
        var words = new int[3];
        GptqPacking.PackStream(values, 3, words);
        Assert.Equal(1u << 30, (uint)words[0]);
        Assert.Equal(1, words[1]);
        Assert.Equal(0, words[2]);
    }

    // GPTQ of all 56 matrices of prose-15m on two short windows: the act-order 3-bit case runs by default, 4-bit as Slow.
    [Fact]
    public void Write_Prose15mInt3ActAsym_TensorsReadBackAndMatricesEqualTheInPlaceResult()
        => WriteAndCompare("gptq-int3-g128-act-asym");

    [Fact]
    [Trait("Category", "Slow")]
    public void Write_Prose15mInt4_TensorsReadBackAndMatricesEqualTheInPlaceResult()
        => WriteAndCompare("gptq-int4-g128");

    private static void WriteAndCompare(string type)
    {
        var options = GptqTypes.Parse(type);
        using var model = ModelLoader.Load(SharedAssets.Prose15m);
        var set = CalibrationSet.Load(SharedAssets.Path("eval", "bible.txt"), model.Tokenizer, model.Config.ContextLength, 2, 64);
        var result = GptqModelQuantizer.Quantize(model, set, options);
        using var dir = new TempModelFolder();
        string folder = dir.Path("out");
        GptqCheckpointWriter.Write(model, result, options, folder);

        using (var checkpoint = SafetensorsCheckpoint.Open(folder))
        {
            var m = result.Matrices["blk.5.ffn_down.weight"];
            string p = "model.layers.5.mlp.down_proj";
            int bits = options.Bits;
            var qw = MemoryMarshal.Cast<byte, int>(checkpoint.Find(p + ".qweight")!.Bytes);
            Assert.Equal(m.Q, GptqPacking.UnpackWeight(qw, m.Rows, m.Cols, bits));
            var qz = MemoryMarshal.Cast<byte, int>(checkpoint.Find(p + ".qzeros")!.Bytes);
            Assert.Equal(m.Zeros, GptqPacking.UnpackZeros(qz, m.Rows, m.Groups, bits, v1: true));
            var scales = MemoryMarshal.Cast<byte, Half>(checkpoint.Find(p + ".scales")!.Bytes);
            for (int o = 0; o < m.Rows; o++)
                for (int k = 0; k < m.Groups; k++) Assert.Equal(m.Scales[o * m.Groups + k], (float)scales[k * m.Rows + o]);
            Assert.Equal(m.GIdx, MemoryMarshal.Cast<byte, int>(checkpoint.Find(p + ".g_idx")!.Bytes).ToArray());
        }

        using var loaded = ModelLoader.Load(folder);
        var a = new float[model.Config.HiddenDim];
        var b = new float[model.Config.HiddenDim];
        for (int l = 0; l < model.Config.Layers; l++)
        {
            var x = model.Weights.Layers[l];
            var y = loaded.Weights.Layers[l];
            foreach (var (wx, wy) in new[] { (x.Wq, y.Wq), (x.Wk, y.Wk), (x.Wv, y.Wv), (x.Wo, y.Wo), (x.Gate, y.Gate), (x.Up, y.Up), (x.Down, y.Down) })
                for (int r = 0; r < wx.Rows; r++)
                {
                    wx.DequantizeRow(r, a.AsSpan(0, wx.Cols));
                    wy.DequantizeRow(r, b.AsSpan(0, wy.Cols));
                    Assert.True(a.AsSpan(0, wx.Cols).SequenceEqual(b.AsSpan(0, wy.Cols)), $"{wx.Name} row {r} differs");
                }
        }

        int[] tokens = set.Windows[0][..32];
        var la = Logits(model, tokens);
        var lb = Logits(loaded, tokens);
        double num = 0, den = 0;
        for (int i = 0; i < la.Length; i++) { num += (la[i] - lb[i]) * (la[i] - lb[i]); den += la[i] * la[i]; }
        // Same weights; the packed kernel rounds activations to int8 per 32, the in-place F32 model does not.
        Assert.True(Math.Sqrt(num / den) < 0.02, $"relative logit difference {Math.Sqrt(num / den)}");
        Assert.Equal(Array.IndexOf(la, la.Max()), Array.IndexOf(lb, lb.Max()));
    }

    private static float[] Logits(LoadedModel model, int[] tokens)
    {
        var llama = new LlamaModel(model, tokens.Length);
        var logits = new float[llama.VocabSize];
        llama.Forward(llama.CreateCache(tokens.Length), tokens, logits);
        return logits;
    }
}
