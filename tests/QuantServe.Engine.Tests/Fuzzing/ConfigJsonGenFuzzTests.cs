using System.Globalization;
using System.Text;
using FsCheck;
using FsCheck.Fluent;
using QuantServe.Engine.Formats.HuggingFace;
using Xunit.Abstractions;

namespace QuantServe.Engine.Tests.Fuzzing;

/// <summary>
/// FsCheck-generated config.json objects: every field a Llama-family config can carry (hyper-parameters, RoPE
/// parameters of each type, sliding window, token ids, activation, flags), each absent, valid, at a boundary or of the
/// wrong JSON type, so combinations that byte mutation of one real file cannot reach (llama3 RoPE with an absurd
/// head_dim, say) are read and converted to a model configuration.
/// </summary>
public class ConfigJsonGenFuzzTests(ITestOutputHelper output)
{
    private static readonly string[] Numbers =
        ["0", "1", "2", "-1", "-4", "8", "32", "64", "256", "768", "4096", "32000", "131072", "1048576", "16777216",
         "2147483647", "-2147483648", "4294967296", "1e999", "0.5", "1.0", "1e-5", "1e-300", "10000.0", "500000.0", "2048.0"];

    private static readonly string[] Odd = ["null", "true", "\"8\"", "[]", "{}", "[8]", "\"\"", "\"\\ud800\""];

    private static Gen<string> Value(params string[] typical) =>
        Gen.Frequency((24, Gen.Elements(typical)), (2, Gen.Elements(Numbers)), (1, Gen.Elements(Odd)));

    private static Gen<string?> Field(string name, Gen<string> value, int presentWeight = 40, int absentWeight = 1) =>
        Gen.Frequency((absentWeight, Gen.Constant<string?>(null)), (presentWeight, value.Select(v => (string?)$"\"{name}\": {v}")));

    /// <summary>Mostly <paramref name="usual"/>, sometimes one of <paramref name="rare"/>.</summary>
    private static Gen<string> Mostly(string usual, params string[] rare) => Gen.Frequency((8, Gen.Constant(usual)), (1, Gen.Elements(rare)));

    private static Gen<string> Object(params Gen<string?>[] fields) =>
        fields.Aggregate(Gen.Constant(new List<string>()), (acc, f) => acc.SelectMany(list => f.Select(x =>
        {
            var next = new List<string>(list);
            if (x != null) next.Add(x);
            return next;
        }))).Select(list => "{" + string.Join(", ", list) + "}");

    [Fact]
    public void Load_GeneratedConfigJson_LoadsOrRejectsCleanly() => Run(FuzzSettings.Cases(800));

    [Fact, Trait("Category", "Slow")]
    public void Load_GeneratedConfigJsonTenfold_LoadsOrRejectsCleanly() => Run(FuzzSettings.Cases(800, 10));

    private void Run(int cases)
    {
        var ropeType = Gen.Frequency((6, Gen.Elements("\"default\"", "\"linear\"", "\"llama3\"", "\"llama3\"")), (1, Gen.Elements("\"dynamic\"", "\"yarn\"", "null", "3")));
        var rope = Object(
            Field("rope_type", ropeType), Field("type", ropeType, 1, 4),
            Field("rope_theta", Value("10000.0", "500000.0")),
            Field("factor", Value("8.0", "2.0", "1.0", "0.5")),
            Field("low_freq_factor", Value("1.0", "0.5")), Field("high_freq_factor", Value("4.0", "1.0")),
            Field("original_max_position_embeddings", Value("8192", "512")));
        var config = Object(
            Field("architectures", Mostly("[\"LlamaForCausalLM\"]", "[\"MistralForCausalLM\"]", "[\"Qwen2ForCausalLM\"]", "[]", "[\"BertModel\"]", "[1]", "\"LlamaForCausalLM\"")),
            Field("model_type", Mostly("\"llama\"", "\"mistral\"", "\"qwen2\"", "\"gpt2\"", "\"\"", "7")),
            Field("hidden_size", Value("256", "64", "4096")),
            Field("intermediate_size", Value("768", "172", "11008")),
            Field("num_hidden_layers", Value("8", "1", "32")),
            Field("num_attention_heads", Value("8", "32", "1")),
            Field("num_key_value_heads", Value("4", "8", "1", "3")),
            Field("head_dim", Gen.Frequency((8, Value("32", "64", "128")), (1, Gen.Elements("2147483647", "-4", "3", "0")))),
            Field("vocab_size", Value("32000", "512", "128256")),
            Field("max_position_embeddings", Value("512", "4096", "131072")),
            Field("rms_norm_eps", Value("1e-05", "1e-06")),
            Field("rope_theta", Value("10000.0", "500000.0"), 3),
            Field("rope_parameters", rope, 1, 1),
            Field("rope_scaling", rope, 1, 2),
            Field("sliding_window", Value("4096", "null", "0"), 1, 3),
            Field("use_sliding_window", Mostly("false", "true", "1"), 1, 3),
            Field("tie_word_embeddings", Gen.Elements("true", "false", "0"), 3),
            Field("attention_bias", Mostly("false", "true", "0"), 1, 2),
            Field("mlp_bias", Mostly("false", "true"), 1, 2),
            Field("hidden_act", Mostly("\"silu\"", "\"gelu\"", "1"), 3),
            Field("bos_token_id", Value("1", "128000"), 3),
            Field("eos_token_id", Gen.Elements("2", "[2, 3]", "[]", "[\"a\"]", "-1", "\"2\"", "[2147483648]"), 3),
            Field("quantization_config", Gen.Elements("{\"quant_method\": \"gptq\"}", "{}", "7"), 1, 30),
            Field("torch_dtype", Gen.Elements("\"float16\"", "\"bfloat16\"", "2"), 2));

        var run = new FuzzRun("config-gen", output);
        int index = 0;
        var fsConfig = Config.QuickThrowOnFailure.WithMaxTest(cases).WithReplay((ulong)FuzzSettings.Seed, 0x9E3779B97F4A7C15UL).WithStartSize(100).WithEndSize(100);
        Prop.ForAll(config.ToArbitrary(), json =>
        {
            run.Case(index++, c =>
            {
                c.Log.Add(json);
                File.WriteAllText(c.Path("config.json"), json, new UTF8Encoding(false));
                c.MustName = c.Path("config.json");
                return () =>
                {
                    var hf = HuggingFaceConfig.Load(c.Dir);
                    var model = hf.ToModelConfig();
                    Assert.True(model.QDim > 0 && model.KvDim > 0 && model.HeadDim % 2 == 0);
                    _ = hf.DisplayMetadata();
                };
            });
            return true;
        }).Check(fsConfig);
        run.Report();
    }
}
