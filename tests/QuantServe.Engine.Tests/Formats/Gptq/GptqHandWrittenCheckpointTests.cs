using System.Runtime.InteropServices;
using System.Text.Json;
using QuantServe.Engine.Formats.Gptq;
using QuantServe.Engine.Formats.Safetensors;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;
using QuantServe.Engine.Quantization.Formats;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Formats.Gptq;

/// <summary>
/// A one-layer Llama written by hand in the Hugging Face GPTQ layout: known random codes, zeros, scales and g_idx are
/// packed here by an independent transcription of AutoGPTQ's pack loops (not <see cref="GptqPacking"/>), then loaded
/// through <see cref="ModelLoader"/> and checked weight by weight and against the same model stored in F32.
/// </summary>
public class GptqHandWrittenCheckpointTests
{
    private const int Dim = 64, Hidden = 96, Heads = 2, HeadDim = 32, Vocab = 32000;

    private sealed record Layer(string Name, int Out, int In, byte[] Q, int[] Zeros, float[] Scales, int[] GIdx, int Groups);

    // AutoGPTQ's QuantLinear.pack, transcribed: qweight rows pack along the input dimension.
    private static uint[] PackAutoGptq(byte[] q, int outF, int inF, int bits)
    {
        var w = new uint[inF * bits / 32 * outF];
        for (int o = 0; o < outF; o++)
        {
            int row = 0, i = 0;
            uint V(int k) => q[o * inF + k];
            ref uint At(int r) => ref w[r * outF + o];
            while (row < inF * bits / 32)
            {
                if (bits is 2 or 4 or 8)
                {
                    for (int j = i; j < i + 32 / bits; j++) At(row) |= V(j) << (bits * (j - i));
                    i += 32 / bits; row++;
                }
                else
                {
                    for (int j = i; j < i + 10; j++) At(row) |= V(j) << (3 * (j - i));
                    i += 10; At(row) |= V(i) << 30; row++;
                    At(row) |= (V(i) >> 2) & 1; i++;
                    for (int j = i; j < i + 10; j++) At(row) |= V(j) << (3 * (j - i) + 1);
                    i += 10; At(row) |= V(i) << 31; row++;
                    At(row) |= (V(i) >> 1) & 3; i++;
                    for (int j = i; j < i + 10; j++) At(row) |= V(j) << (3 * (j - i) + 2);
                    i += 10; row++;
                }
            }
        }
        return w;
    }

    // qzeros pack the same way along the output dimension, one row per group; v1 stores zero − 1.
    private static uint[] PackZerosAutoGptq(int[] zeros, int outF, int groups, int bits)
    {
        var asCodes = new byte[groups * outF];
        for (int k = 0; k < groups; k++)
            for (int o = 0; o < outF; o++) asCodes[k * outF + o] = (byte)((zeros[o * groups + k] - 1) & ((1 << bits) - 1));
        // Packing a [groups, out] matrix along out is PackAutoGptq of its transpose-free rows with in = out.
        var t = PackAutoGptq(asCodes, groups, outF, bits); // [out·bits/32, groups]
        int words = outF * bits / 32;
        var result = new uint[groups * words];
        for (int k = 0; k < groups; k++)
            for (int r = 0; r < words; r++) result[k * words + r] = t[r * groups + k];
        return result;
    }

    private static Layer MakeLayer(Random rng, string name, int outF, int inF, int bits, int group, bool actOrder)
    {
        int groups = (inF + group - 1) / group, maxq = (1 << bits) - 1;
        var q = new byte[outF * inF];
        for (int i = 0; i < q.Length; i++) q[i] = (byte)rng.Next(maxq + 1);
        var zeros = new int[outF * groups];
        for (int i = 0; i < zeros.Length; i++) zeros[i] = 1 + rng.Next(maxq); // v1 cannot store a zero point of 0
        var scales = new float[outF * groups];
        for (int i = 0; i < scales.Length; i++) scales[i] = (float)(Half)(0.002 + 0.02 * rng.NextDouble());
        var gIdx = new int[inF];
        var order = Enumerable.Range(0, inF).ToArray();
        if (actOrder) rng.Shuffle(order);
        for (int pos = 0; pos < inF; pos++) gIdx[order[pos]] = pos / group;
        return new Layer(name, outF, inF, q, zeros, scales, gIdx, groups);
    }

    private static float Expected(Layer l, int r, int c)
    {
        int g = r * l.Groups + l.GIdx[c];
        return l.Scales[g] * (l.Q[r * l.In + c] - l.Zeros[g]);
    }

    private static void WriteFolder(string dir, int bits, int group, bool actOrder, IReadOnlyList<Layer> layers, bool asFloat)
    {
        var rng = new Random(7);
        var w = new SafetensorsWriter();
        var emb = new Half[Vocab * Dim];
        for (int i = 0; i < emb.Length; i++) emb[i] = (Half)(rng.NextDouble() - 0.5);
        w.Add("model.embed_tokens.weight", SafetensorsDType.F16, [Vocab, Dim], MemoryMarshal.AsBytes(emb.AsSpan()).ToArray());
        float[] Norm() => Enumerable.Range(0, Dim).Select(i => 0.5f + i / (float)Dim).ToArray();
        w.Add("model.layers.0.input_layernorm.weight", [Dim], Norm());
        w.Add("model.layers.0.post_attention_layernorm.weight", [Dim], Norm());
        w.Add("model.norm.weight", [Dim], Norm());
        foreach (var l in layers)
        {
            string p = "model.layers.0." + l.Name;
            if (asFloat)
            {
                var f = new float[l.Out * l.In];
                for (int r = 0; r < l.Out; r++)
                    for (int c = 0; c < l.In; c++) f[r * l.In + c] = Expected(l, r, c);
                w.Add(p + ".weight", [l.Out, l.In], f);
                continue;
            }
            var qw = PackAutoGptq(l.Q, l.Out, l.In, bits);
            var qz = PackZerosAutoGptq(l.Zeros, l.Out, l.Groups, bits);
            var sc = new Half[l.Groups * l.Out];
            for (int k = 0; k < l.Groups; k++)
                for (int o = 0; o < l.Out; o++) sc[k * l.Out + o] = (Half)l.Scales[o * l.Groups + k];
            w.Add(p + ".qweight", SafetensorsDType.I32, [l.In * bits / 32, l.Out], MemoryMarshal.AsBytes(qw.AsSpan()).ToArray());
            w.Add(p + ".qzeros", SafetensorsDType.I32, [l.Groups, l.Out * bits / 32], MemoryMarshal.AsBytes(qz.AsSpan()).ToArray());
            w.Add(p + ".scales", SafetensorsDType.F16, [l.Groups, l.Out], MemoryMarshal.AsBytes(sc.AsSpan()).ToArray());
            w.Add(p + ".g_idx", SafetensorsDType.I32, [l.In], MemoryMarshal.AsBytes(l.GIdx.AsSpan()).ToArray());
        }
        w.Write(Path.Combine(dir, "model.safetensors"));
        var config = new Dictionary<string, object>
        {
            ["architectures"] = new[] { "LlamaForCausalLM" }, ["model_type"] = "llama", ["hidden_size"] = Dim,
            ["intermediate_size"] = Hidden, ["num_hidden_layers"] = 1, ["num_attention_heads"] = Heads,
            ["num_key_value_heads"] = 1, ["head_dim"] = HeadDim, ["vocab_size"] = Vocab, ["max_position_embeddings"] = 64,
            ["rms_norm_eps"] = 1e-5, ["tie_word_embeddings"] = true, ["bos_token_id"] = 1, ["eos_token_id"] = 2,
        };
        if (!asFloat)
            config["quantization_config"] = new Dictionary<string, object>
            {
                ["quant_method"] = "gptq", ["bits"] = bits, ["group_size"] = group, ["desc_act"] = actOrder, ["sym"] = false,
            };
        File.WriteAllText(Path.Combine(dir, "config.json"), JsonSerializer.Serialize(config));
        File.Copy(SharedAssets.Path("models", "prose-15m", "tokenizer.json"), Path.Combine(dir, "tokenizer.json"));
    }

    [Theory]
    [InlineData(4, 32, false)]
    [InlineData(4, 32, true)]
    [InlineData(3, 32, false)]
    [InlineData(3, 32, true)]
    [InlineData(2, 64, true)]
    [InlineData(8, -1, false)]
    public void Load_HandPackedCheckpoint_EveryWeightAndLogitsMatch(int bits, int group, bool actOrder)
    {
        var rng = new Random(bits * 100 + group + (actOrder ? 1 : 0));
        int G(int inF) => group < 0 ? inF : group;
        var layers = new List<Layer>
        {
            MakeLayer(rng, "self_attn.q_proj", Heads * HeadDim, Dim, bits, G(Dim), actOrder),
            MakeLayer(rng, "self_attn.k_proj", HeadDim, Dim, bits, G(Dim), actOrder),
            MakeLayer(rng, "self_attn.v_proj", HeadDim, Dim, bits, G(Dim), actOrder),
            MakeLayer(rng, "self_attn.o_proj", Dim, Heads * HeadDim, bits, G(Heads * HeadDim), actOrder),
            MakeLayer(rng, "mlp.gate_proj", Hidden, Dim, bits, G(Dim), actOrder),
            MakeLayer(rng, "mlp.up_proj", Hidden, Dim, bits, G(Dim), actOrder),
            MakeLayer(rng, "mlp.down_proj", Dim, Hidden, bits, G(Hidden), actOrder),
        };
        using var gptqDir = new TempModelFolder();
        using var floatDir = new TempModelFolder();
        WriteFolder(gptqDir.Dir, bits, group, actOrder, layers, asFloat: false);
        WriteFolder(floatDir.Dir, bits, group, actOrder, layers, asFloat: true);
        using var gptq = ModelLoader.Load(gptqDir.Dir);
        using var reference = ModelLoader.Load(floatDir.Dir);

        var lw = gptq.Weights.Layers[0];
        var loaded = new[] { lw.Wq, lw.Wk, lw.Wv, lw.Wo, lw.Gate, lw.Up, lw.Down };
        for (int m = 0; m < layers.Count; m++)
        {
            var l = layers[m];
            Assert.Equal((l.Out, l.In), (loaded[m].Rows, loaded[m].Cols));
            Assert.Equal(actOrder && (group < 0 ? l.In : group) < l.In, loaded[m].Format is PermutedFormat);
            var row = new float[l.In];
            for (int r = 0; r < l.Out; r++)
            {
                loaded[m].DequantizeRow(r, row);
                for (int c = 0; c < l.In; c++)
                    if (row[c] != Expected(l, r, c)) Assert.Fail($"{l.Name}[{r},{c}] = {row[c]}, expected {Expected(l, r, c)}");
            }
        }

        int[] tokens = [1, 450, 4799, 310, 278, 3186, 338];
        var a = Logits(gptq, tokens);
        var b = Logits(reference, tokens);
        double num = 0, den = 0;
        for (int i = 0; i < a.Length; i++) { num += (a[i] - b[i]) * (a[i] - b[i]); den += b[i] * b[i]; }
        // The quantized kernel rounds activations to int8 per 32; the F32 reference does not.
        Assert.True(Math.Sqrt(num / den) < 0.02, $"relative logit error {Math.Sqrt(num / den)}");
    }

    private static float[] Logits(LoadedModel model, int[] tokens)
    {
        var llama = new LlamaModel(model, tokens.Length);
        var logits = new float[llama.VocabSize];
        llama.Forward(llama.CreateCache(tokens.Length), tokens, logits);
        return logits;
    }

    [Fact]
    public void Load_GIdxWithUnevenGroups_ThrowsModelLoadException()
    {
        var rng = new Random(1);
        var layers = new List<Layer>
        {
            MakeLayer(rng, "self_attn.q_proj", Heads * HeadDim, Dim, 4, 32, false),
            MakeLayer(rng, "self_attn.k_proj", HeadDim, Dim, 4, 32, false),
            MakeLayer(rng, "self_attn.v_proj", HeadDim, Dim, 4, 32, false),
            MakeLayer(rng, "self_attn.o_proj", Dim, Heads * HeadDim, 4, 32, false),
            MakeLayer(rng, "mlp.gate_proj", Hidden, Dim, 4, 32, false),
            MakeLayer(rng, "mlp.up_proj", Hidden, Dim, 4, 32, false),
            MakeLayer(rng, "mlp.down_proj", Dim, Hidden, 4, 32, false),
        };
        layers[2].GIdx[0] = 1; // group 0 now holds 31 columns, group 1 33
        using var dir = new TempModelFolder();
        WriteFolder(dir.Dir, 4, 32, true, layers, asFloat: false);
        var e = Assert.Throws<ModelLoadException>(() => ModelLoader.Load(dir.Dir));
        Assert.Contains("v_proj", e.Message);
        Assert.Contains("31 columns in group 0", e.Message);
    }
}
