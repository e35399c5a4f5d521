using System.Runtime.InteropServices;
using QuantServe.Engine.Formats.Awq;
using QuantServe.Engine.Formats.Safetensors;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;
using QuantServe.Engine.Quantization.Calibration;
using QuantServe.Engine.Quantization.Methods;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Formats.Awq;

public class AwqCheckpointTests
{
    // AutoAWQ's pack order written out: nibble k of a word holds output 8j + Order[k].
    private static readonly int[] Order = [0, 2, 4, 6, 1, 3, 5, 7];

    private static float[] Logits(LoadedModel loaded, int[] tokens)
    {
        var model = new LlamaModel(loaded, tokens.Length);
        var logits = new float[tokens.Length * loaded.Config.VocabSize];
        model.Forward([new SequenceChunk(model.CreateCache(tokens.Length), tokens)], logits, logitsForAllPositions: true);
        return logits;
    }

    [Fact]
    public void PackWeights_CodesOneToEightOfInputZero_GivesAutoAwqWord()
    {
        var q = new byte[8 * 32];
        for (int o = 0; o < 8; o++) q[o * 32] = (byte)(o + 1);
        var zeros = new byte[] { 8, 9, 10, 11, 12, 13, 14, 15 };
        var m = new AwqMatrix(4, 32, 8, 32, q, Enumerable.Repeat(0.5f, 8).ToArray(), zeros);
        var packed = AwqGemmLayout.PackWeights(m);
        Assert.Equal(32, packed.Length); // [in = 32, out / 8 = 1]
        Assert.Equal(unchecked((int)0x86427531u), packed[0]);
        Assert.All(packed.Skip(1), w => Assert.Equal(0, w));
        // Zero points 8..15 of outputs 0..7: nibbles 8, 10, 12, 14, 9, 11, 13, 15.
        Assert.Equal([unchecked((int)0xFDB9ECA8u)], AwqGemmLayout.PackZeros(m));
        Assert.Equal(Enumerable.Repeat((Half)0.5f, 8), AwqGemmLayout.PackScales(m));
    }

    [Fact]
    public void ToWeightMatrix_HandPackedWord_UnpacksEveryOutputInOrder()
    {
        // Input 0 holds codes 1..8 for outputs 0..7 (word 0x86427531); zero points 0; scale 1: weight (o, 0) = o + 1.
        var qweight = new int[32];
        qweight[0] = unchecked((int)0x86427531u);
        var scales = Enumerable.Repeat((Half)1f, 8).ToArray();
        var w = AwqGemmLayout.ToWeightMatrix("t", qweight, [0], scales, 8, 32, 32);
        var row = new float[32];
        for (int o = 0; o < 8; o++)
        {
            w.DequantizeRow(o, row);
            Assert.Equal(o + 1f, row[0]);
            Assert.All(row.Skip(1), v => Assert.Equal(0f, v));
        }
    }

    private static int[] PackByHand(int[,] v, int rows, int cols)
    {
        // v is [rows = outputs or groups][cols = outputs], packed along the outputs.
        var r = new int[rows * cols / 8];
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols / 8; j++)
                for (int k = 0; k < 8; k++) r[i * (cols / 8) + j] |= v[i, 8 * j + Order[k]] << (4 * k);
        return r;
    }

    [Fact]
    public void Load_HandWrittenAwqFolder_DequantizesEveryWeightAndComputesLikeTheDenseModel()
    {
        using var folder = new TempModelFolder();
        File.Copy(SharedAssets.Path("models", "prose-15m", "tokenizer.json"), folder.Path("tokenizer.json"));
        File.WriteAllText(folder.Path("config.json"), """
            {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
             "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 32, "vocab_size": 32000,
             "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": true,
             "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
             "quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 32, "zero_point": true, "version": "GEMM"}}
            """);
        const int group = 32;
        var rng = new Random(7);
        Half[] RandomHalves(int n, double scale) => Enumerable.Range(0, n).Select(_ => (Half)((rng.NextDouble() * 2 - 1) * scale)).ToArray();
        byte[] Bytes<T>(T[] a) where T : unmanaged => MemoryMarshal.AsBytes(a.AsSpan()).ToArray();
        var writer = new SafetensorsWriter();
        writer.Add("model.embed_tokens.weight", SafetensorsDType.F16, [32000, 64], Bytes(RandomHalves(32000 * 64, 1)));
        writer.Add("model.norm.weight", SafetensorsDType.F16, [64], Bytes(Enumerable.Repeat((Half)1, 64).ToArray()));
        writer.Add("model.layers.0.input_layernorm.weight", SafetensorsDType.F16, [64], Bytes(RandomHalves(64, 1)));
        writer.Add("model.layers.0.post_attention_layernorm.weight", SafetensorsDType.F16, [64], Bytes(RandomHalves(64, 1)));
        var expected = new Dictionary<string, float[,]>();
        (string Name, int Out, int In)[] linears =
        [
            ("self_attn.q_proj", 64, 64), ("self_attn.k_proj", 32, 64), ("self_attn.v_proj", 32, 64), ("self_attn.o_proj", 64, 64),
            ("mlp.gate_proj", 128, 64), ("mlp.up_proj", 128, 64),
        ];
        foreach (var (name, outF, inF) in linears)
        {
            int groups = inF / group;
            var q = new int[inF, outF];
            var z = new int[groups, outF];
            var s = new Half[groups * outF];
            var w = new float[outF, inF];
            for (int g = 0; g < groups; g++)
                for (int o = 0; o < outF; o++) { z[g, o] = rng.Next(16); s[g * outF + o] = (Half)(0.01 + 0.05 * rng.NextDouble()); }
            for (int i = 0; i < inF; i++)
                for (int o = 0; o < outF; o++)
                {
                    q[i, o] = rng.Next(16);
                    w[o, i] = (float)s[(i / group) * outF + o] * (q[i, o] - z[i / group, o]);
                }
            expected[name] = w;
            string p = "model.layers.0." + name;
            writer.Add(p + ".qweight", SafetensorsDType.I32, [inF, outF / 8], Bytes(PackByHand(q, inF, outF)));
            writer.Add(p + ".qzeros", SafetensorsDType.I32, [groups, outF / 8], Bytes(PackByHand(z, groups, outF)));
            writer.Add(p + ".scales", SafetensorsDType.F16, [groups, outF], Bytes(s));
        }
        // down_proj left unquantized, as modules_to_not_convert would leave it.
        var down = RandomHalves(64 * 128, 0.1);
        writer.Add("model.layers.0.mlp.down_proj.weight", SafetensorsDType.F16, [64, 128], Bytes(down));
        writer.Write(folder.Path("model.safetensors"));

        using var model = ModelLoader.Load(folder.Dir);
        Assert.Equal("awq", model.SourceFormat);
        var L = model.Weights.Layers[0];
        var byName = new Dictionary<string, QuantServe.Engine.Tensors.WeightMatrix>
        {
            ["self_attn.q_proj"] = L.Wq, ["self_attn.k_proj"] = L.Wk, ["self_attn.v_proj"] = L.Wv, ["self_attn.o_proj"] = L.Wo,
            ["mlp.gate_proj"] = L.Gate, ["mlp.up_proj"] = L.Up,
        };
        foreach (var (name, w) in expected)
        {
            var m = byName[name];
            Assert.Equal("int4-g32-asym", m.Format.Name);
            var row = new float[m.Cols];
            for (int o = 0; o < m.Rows; o++)
            {
                m.DequantizeRow(o, row);
                for (int i = 0; i < m.Cols; i++) Assert.Equal(w[o, i], row[i]);
            }
        }
        Assert.Equal("F16", L.Down.Format.Name);

        int[] tokens = [1, 450, 3186, 310, 278, 3186, 338, 1781];
        var logits = Logits(model, tokens);
        QuantServe.Engine.Tensors.WeightMatrix Dense(string name)
        {
            var w = expected[name];
            var flat = new float[w.Length];
            Buffer.BlockCopy(w, 0, flat, 0, flat.Length * 4);
            return DenseMatrix.F32(name, w.GetLength(0), w.GetLength(1), flat);
        }
        model.Weights.Layers[0] = new LayerWeights
        {
            AttnNorm = L.AttnNorm, FfnNorm = L.FfnNorm,
            Wq = Dense("self_attn.q_proj"), Wk = Dense("self_attn.k_proj"), Wv = Dense("self_attn.v_proj"), Wo = Dense("self_attn.o_proj"),
            Gate = Dense("mlp.gate_proj"), Up = Dense("mlp.up_proj"), Down = L.Down,
        };
        var dense = Logits(model, tokens);
        double max = dense.Max(v => Math.Abs(v)), diff = 0;
        for (int i = 0; i < dense.Length; i++) diff = Math.Max(diff, Math.Abs(dense[i] - logits[i]));
        // The integer kernels quantize activations to 8 bits; the dense path does not.
        Assert.True(diff < 0.02 * max, $"logits differ by {diff} (max |logit| {max})");
    }

    [Fact]
    public void Save_AwqProse15m_ReloadsBitIdenticallyWithTheSameLogits()
    {
        using var model = ModelLoader.Load(SharedAssets.Prose15m);
        var set = CalibrationSet.Load(SharedAssets.Path("eval", "bible.txt"), model.Tokenizer, 512, 2, 64);
        var result = AwqModelQuantizer.Quantize(model, set, new AwqOptions { Grid = 3, ClipGrid = 8, MaxTokens = 128 });
        using var folder = new TempModelFolder();
        string output = folder.Path("awq");
        AwqCheckpoint.Save(model, result, output);
        AwqModelQuantizer.UseIntegerKernels(model, result);

        using var loaded = ModelLoader.Load(output);
        Assert.Equal("awq", loaded.SourceFormat);
        for (int l = 0; l < model.Config.Layers; l++)
        {
            var a = model.Weights.Layers[l];
            var b = loaded.Weights.Layers[l];
            Assert.Equal(a.AttnNorm, b.AttnNorm);
            Assert.Equal(a.FfnNorm, b.FfnNorm);
            foreach (var (x, y) in a.Matrices.Zip(b.Matrices))
            {
                Assert.Equal(x.Format.Name, y.Format.Name);
                for (int r = 0; r < x.Rows; r++) Assert.True(x.RowSpan(r).SequenceEqual(y.RowSpan(r)), $"layer {l} {x.Name} row {r} differs");
            }
        }
        var tokens = CalibrationSet.Load(SharedAssets.Path("eval", "pydoc.txt"), model.Tokenizer, 512, 1, 32).Windows[0];
        Assert.Equal(Logits(model, tokens), Logits(loaded, tokens));
    }
}
