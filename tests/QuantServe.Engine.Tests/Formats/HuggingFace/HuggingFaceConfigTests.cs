using QuantServe.Engine.Formats.HuggingFace;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Formats.HuggingFace;

public class HuggingFaceConfigTests
{
    private static readonly string Prose15mConfig = File.ReadAllText(SharedAssets.Path("models", "prose-15m", "config.json"));

    /// <summary>prose-15m's real config.json with one substitution applied (the pattern must occur).</summary>
    private static HuggingFaceConfig ParseEdited(params (string From, string To)[] edits)
    {
        string json = Prose15mConfig;
        foreach (var (from, to) in edits)
        {
            Assert.Contains(from, json);
            json = json.Replace(from, to);
        }
        return HuggingFaceConfig.Parse("/models/x/config.json", json);
    }

    private static ModelLoadException ParseFails(params (string From, string To)[] edits) =>
        Assert.Throws<ModelLoadException>(() => ParseEdited(edits).ToModelConfig());

    [Fact]
    public void Load_Prose15m_ReadsEveryField()
    {
        var hf = HuggingFaceConfig.Load(SharedAssets.Prose15m);
        Assert.Equal("llama", hf.ModelType);
        Assert.Equal(["LlamaForCausalLM"], hf.Architectures);
        Assert.Equal(1, hf.BosTokenId);
        Assert.Equal([2], hf.EosTokenIds);
        Assert.Equal("float16", hf.DType);
        Assert.False(hf.QkvBias);

        var c = hf.ToModelConfig();
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
        Assert.Equal(1f, c.RopeScale);
        Assert.Equal(RopeStyle.Neox, c.Rope);
        Assert.Equal(1e-5f, c.NormEps);
        Assert.True(c.TiedEmbeddings);
        Assert.Equal("silu", hf.DisplayMetadata()["config.hidden_act"]);
    }

    [Fact]
    public void Parse_UnknownModelType_ThrowsUnknownArchitecture()
    {
        var e = ParseFails(("\"model_type\": \"llama\"", "\"model_type\": \"gpt2\""));
        Assert.Equal("/models/x/config.json", e.File);
        Assert.Contains("unknown architecture", e.Problem);
        Assert.Contains("gpt2", e.Problem);
    }

    [Fact]
    public void Parse_UnsupportedArchitectureClass_Throws()
    {
        var e = ParseFails(("\"LlamaForCausalLM\"", "\"LlamaForSequenceClassification\""));
        Assert.Contains("LlamaForSequenceClassification", e.Problem);
    }

    [Fact]
    public void Parse_NoModelTypeButKnownClass_InfersArchitecture()
    {
        var hf = ParseEdited(("\"model_type\": \"llama\",", ""), ("\"LlamaForCausalLM\"", "\"MistralForCausalLM\""));
        Assert.Equal("mistral", hf.ModelType);
    }

    [Theory]
    [InlineData("hidden_size")]
    [InlineData("intermediate_size")]
    [InlineData("num_hidden_layers")]
    [InlineData("num_attention_heads")]
    [InlineData("vocab_size")]
    [InlineData("max_position_embeddings")]
    public void Parse_MissingRequiredField_ThrowsNamingField(string field)
    {
        string json = System.Text.RegularExpressions.Regex.Replace(Prose15mConfig, $"\"{field}\": [0-9]+,?", "");
        Assert.DoesNotContain($"\"{field}\"", json);
        var e = Assert.Throws<ModelLoadException>(() => HuggingFaceConfig.Parse("/models/x/config.json", json));
        Assert.Contains($"\"{field}\" is missing", e.Problem);
    }

    [Fact]
    public void Parse_FieldOfWrongType_ThrowsNamingField()
    {
        var e = ParseFails(("\"hidden_size\": 256", "\"hidden_size\": \"256\""));
        Assert.Contains("\"hidden_size\"", e.Problem);
        Assert.Contains("expected an integer", e.Problem);
    }

    [Fact]
    public void Parse_MalformedJson_Throws()
    {
        var e = Assert.Throws<ModelLoadException>(() => HuggingFaceConfig.Parse("/models/x/config.json", Prose15mConfig[..100]));
        Assert.Contains("malformed JSON", e.Problem);
    }

    [Fact]
    public void Parse_NoKvHeadsOrHeadDim_DefaultsToHeadsAndHiddenOverHeads()
    {
        var c = ParseEdited(("\"num_key_value_heads\": 4,", ""), ("\"head_dim\": 32,", "")).ToModelConfig();
        Assert.Equal(8, c.KvHeads);
        Assert.Equal(32, c.HeadDim);
    }

    [Fact]
    public void Parse_LegacyRopeThetaAndLinearScaling_SetsThetaAndScale()
    {
        var c = ParseEdited(("\"rope_parameters\": {\n    \"rope_theta\": 10000.0,\n    \"rope_type\": \"default\"\n  }",
            "\"rope_theta\": 500000.0, \"rope_scaling\": {\"type\": \"linear\", \"factor\": 4.0}")).ToModelConfig();
        Assert.Equal(500000f, c.RopeTheta);
        Assert.Equal(4f, c.RopeScale);
    }

    [Fact]
    public void Parse_RopeParametersLinear_SetsScale()
    {
        var c = ParseEdited(("\"rope_type\": \"default\"", "\"rope_type\": \"linear\", \"factor\": 2.0")).ToModelConfig();
        Assert.Equal(2f, c.RopeScale);
        Assert.Equal(10000f, c.RopeTheta);
    }

    [Fact]
    public void Llama3FrequencyFactors_Llama31Settings_MatchTransformersBlend()
    {
        // Llama 3.1 8B: rope_theta 500000, head_dim 128, factor 8, low 1, high 4, original context 8192. Pairs 0-28 keep
        // their frequency, 35-63 are divided by 8, 29-34 are blended (values from transformers' formula).
        var f = HuggingFaceConfig.Llama3FrequencyFactors(500000, 128, 8, 1, 4, 8192);
        Assert.Equal(64, f.Length);
        Assert.All(f[..29], v => Assert.Equal(1f, v));
        Assert.All(f[35..], v => Assert.Equal(8f, v));
        float[] blended = [1.207484f, 1.553415f, 2.026313f, 2.69453f, 3.684253f, 5.257327f];
        for (int i = 0; i < blended.Length; i++) Assert.Equal(blended[i], f[29 + i], 1e-5f);
    }

    [Fact]
    public void Parse_Llama3RopeParameters_SetsFrequencyFactors()
    {
        var c = ParseEdited(("\"rope_type\": \"default\"",
            "\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 64")).ToModelConfig();
        Assert.Equal(1f, c.RopeScale);
        Assert.Equal(HuggingFaceConfig.Llama3FrequencyFactors(10000, 32, 8, 1, 4, 64), c.RopeFrequencyFactors);
        Assert.Equal(8f, c.RopeFrequencyFactors![^1]);
    }

    [Fact]
    public void Parse_Llama3RopeWithoutOriginalContext_ThrowsNamingField()
    {
        var e = ParseFails(("\"rope_type\": \"default\"", "\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0"));
        Assert.Contains("rope_parameters.original_max_position_embeddings", e.Problem);
    }

    [Theory]
    [InlineData("longrope")]
    [InlineData("yarn")]
    [InlineData("dynamic")]
    public void Parse_UnsupportedRopeType_ThrowsNamingType(string type)
    {
        var e = ParseFails(("\"rope_type\": \"default\"", $"\"rope_type\": \"{type}\", \"factor\": 8.0"));
        Assert.Contains($"\"{type}\"", e.Problem);
        Assert.Contains("rope_parameters.rope_type", e.Problem);
    }

    [Fact]
    public void Parse_Qwen2_ExpectsQkvBiases()
    {
        var hf = ParseEdited(("\"model_type\": \"llama\"", "\"model_type\": \"qwen2\""), ("\"LlamaForCausalLM\"", "\"Qwen2ForCausalLM\""),
            ("\"tie_word_embeddings\": true", "\"tie_word_embeddings\": true, \"sliding_window\": 4096, \"use_sliding_window\": false"));
        Assert.True(hf.QkvBias);
        Assert.Null(hf.SlidingWindow);
        Assert.Equal("qwen2", hf.ToModelConfig().Architecture);
    }

    [Fact]
    public void Parse_MistralSlidingWindowBelowContext_LimitsContextToWindow()
    {
        var c = ParseEdited(("\"model_type\": \"llama\"", "\"model_type\": \"mistral\""), ("\"LlamaForCausalLM\"", "\"MistralForCausalLM\""),
            ("\"tie_word_embeddings\": true", "\"tie_word_embeddings\": true, \"sliding_window\": 128")).ToModelConfig();
        Assert.Equal(128, c.ContextLength);
    }

    [Fact]
    public void Parse_EosList_ReadsAllIds()
    {
        var hf = ParseEdited(("\"eos_token_id\": 2", "\"eos_token_id\": [2, 32000]"));
        Assert.Equal([2, 32000], hf.EosTokenIds);
    }

    [Theory]
    [InlineData("\"attention_bias\": false", "\"attention_bias\": true", "attention_bias")]
    [InlineData("\"mlp_bias\": false", "\"mlp_bias\": true", "mlp_bias")]
    [InlineData("\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\"", "gelu")]
    [InlineData("\"num_key_value_heads\": 4", "\"num_key_value_heads\": 3", "kv_heads")]
    [InlineData("\"tie_word_embeddings\": true", "\"tie_word_embeddings\": true, \"quantization_config\": {\"quant_method\": \"gptq\", \"bits\": 5}", "bits = 5")]
    [InlineData("\"tie_word_embeddings\": true", "\"tie_word_embeddings\": true, \"quantization_config\": {\"quant_method\": \"bitsandbytes\"}", "bitsandbytes")]
    public void Parse_UnsupportedSetting_ThrowsNamingIt(string from, string to, string fragment)
    {
        var e = ParseFails((from, to));
        Assert.Contains(fragment, e.Problem);
    }

    [Fact]
    public void Parse_RandomlyCorruptedConfig_SucceedsOrThrowsModelLoadException()
    {
        var rng = new Random(11);
        const string alphabet = "0123456789{}[]\",:.-e ntfl";
        for (int trial = 0; trial < 500; trial++)
        {
            var chars = Prose15mConfig.ToCharArray();
            for (int f = rng.Next(1, 4); f > 0; f--) chars[rng.Next(chars.Length)] = alphabet[rng.Next(alphabet.Length)];
            try
            {
                HuggingFaceConfig.Parse("/models/x/config.json", new string(chars)).ToModelConfig();
            }
            catch (ModelLoadException e)
            {
                Assert.Equal("/models/x/config.json", e.File);
            }
        }
    }
}
