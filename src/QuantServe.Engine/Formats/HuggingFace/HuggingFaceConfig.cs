using System.Text.Json;
using QuantServe.Engine.Formats.Gptq;
using QuantServe.Engine.Models;
using QuantServe.Engine.Formats;

namespace QuantServe.Engine.Formats.HuggingFace;

/// <summary>
/// The fields of a Hugging Face <c>config.json</c> that define a Llama-family decoder (model types <c>llama</c>,
/// <c>mistral</c>, <c>qwen2</c>). Defaults for absent optional fields are those of the transformers config classes.
/// </summary>
public sealed record HuggingFaceConfig
{
    /// <summary>The model types QuantServe reads, with the class transformers loads for each.</summary>
    public static readonly IReadOnlyDictionary<string, string> SupportedModelTypes = new Dictionary<string, string>
    {
        ["llama"] = "LlamaForCausalLM",
        ["mistral"] = "MistralForCausalLM",
        ["qwen2"] = "Qwen2ForCausalLM",
    };

    /// <summary>Path of the config.json this came from.</summary>
    public required string Path { get; init; }
    /// <summary><c>model_type</c>: llama, mistral or qwen2.</summary>
    public required string ModelType { get; init; }
    /// <summary><c>architectures</c> (may be empty).</summary>
    public IReadOnlyList<string> Architectures { get; init; } = [];
    /// <summary><c>hidden_size</c>.</summary>
    public required int HiddenSize { get; init; }
    /// <summary><c>intermediate_size</c>.</summary>
    public required int IntermediateSize { get; init; }
    /// <summary><c>num_hidden_layers</c>.</summary>
    public required int Layers { get; init; }
    /// <summary><c>num_attention_heads</c>.</summary>
    public required int Heads { get; init; }
    /// <summary><c>num_key_value_heads</c> (defaults to the attention heads).</summary>
    public required int KvHeads { get; init; }
    /// <summary><c>head_dim</c> (defaults to hidden_size / num_attention_heads).</summary>
    public required int HeadDim { get; init; }
    /// <summary><c>vocab_size</c>.</summary>
    public required int VocabSize { get; init; }
    /// <summary><c>max_position_embeddings</c>.</summary>
    public required int MaxPositionEmbeddings { get; init; }
    /// <summary>RoPE θ from <c>rope_parameters.rope_theta</c> or <c>rope_theta</c>.</summary>
    public double RopeTheta { get; init; } = 10000;
    /// <summary>Linear RoPE scaling factor (1 = none).</summary>
    public double RopeScale { get; init; } = 1;
    /// <summary>Per-pair RoPE frequency divisors (Llama 3.1's <c>rope_type: llama3</c>), or null.</summary>
    public float[]? RopeFrequencyFactors { get; init; }
    /// <summary><c>rms_norm_eps</c>.</summary>
    public double RmsNormEps { get; init; } = 1e-6;
    /// <summary><c>tie_word_embeddings</c>.</summary>
    public bool TieWordEmbeddings { get; init; }
    /// <summary>Whether q/k/v projections carry biases (always for qwen2; <c>attention_bias</c> for llama).</summary>
    public bool QkvBias { get; init; }
    /// <summary>Sliding attention window, when the model uses one on every layer (mistral's <c>sliding_window</c>).</summary>
    public int? SlidingWindow { get; init; }
    /// <summary><c>bos_token_id</c>.</summary>
    public int? BosTokenId { get; init; }
    /// <summary><c>eos_token_id</c> (an integer or a list in the file).</summary>
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];
    /// <summary><c>dtype</c> / <c>torch_dtype</c> as written (float16, bfloat16, float32), or null.</summary>
    public string? DType { get; init; }
    /// <summary>The GPTQ <c>quantization_config</c> when the checkpoint's linear layers are GPTQ-packed, else null.</summary>
    public GptqQuantizationConfig? GptqQuantization { get; init; }
    /// <summary>Top-level scalar fields as text, for display.</summary>
    public IReadOnlyDictionary<string, string> Fields { get; init; } = new Dictionary<string, string>();

    /// <summary>Reads <c>config.json</c> in <paramref name="folder"/>.</summary>
    public static HuggingFaceConfig Load(string folder)
    {
        string path = System.IO.Path.Combine(System.IO.Path.GetFullPath(folder), "config.json");
        if (!File.Exists(path)) throw new ModelLoadException(path, "config.json is missing: not a Hugging Face model folder");
        using var doc = HuggingFaceJson.ParseFile(path);
        return JsonGuard.Read(path, () => Parse(new HuggingFaceJson(path, doc.RootElement)));
    }

    /// <summary>Parses a config.json already read from <paramref name="path"/>.</summary>
    public static HuggingFaceConfig Parse(string path, string json)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(json, HuggingFaceJson.Options); }
        catch (JsonException e) { throw new ModelLoadException(path, $"malformed JSON: {e.Message}", e); }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new ModelLoadException(path, "not a JSON object");
            return JsonGuard.Read(path, () => Parse(new HuggingFaceJson(path, doc.RootElement)));
        }
    }

    private static HuggingFaceConfig Parse(HuggingFaceJson j)
    {
        string path = j.Path;
        var architectures = new List<string>();
        if (j.Get("architectures") is { } arch)
        {
            if (arch.ValueKind != JsonValueKind.Array || arch.EnumerateArray().Any(a => a.ValueKind != JsonValueKind.String))
                throw new ModelLoadException(path, $"field \"architectures\" is {arch.GetRawText()}, expected a list of class names");
            architectures.AddRange(arch.EnumerateArray().Select(a => a.GetString()!));
        }
        string modelType = ModelTypeOf(j, architectures);
        string expectedClass = SupportedModelTypes[modelType];
        var foreign = architectures.Where(a => a != expectedClass).ToList();
        if (foreign.Count > 0)
            throw new ModelLoadException(path, $"unsupported architecture {string.Join(", ", foreign)}: QuantServe runs {expectedClass} (a causal language model) for model_type {modelType}");

        GptqQuantizationConfig? gptq = null;
        if (j.Get("quantization_config") is { } quant)
        {
            string method = quant.ValueKind == JsonValueKind.Object && quant.TryGetProperty("quant_method", out var m) ? m.ToString() : "unknown";
            if (method == "gptq") gptq = GptqQuantizationConfig.Parse(j.Object("quantization_config")!.Value);
            else throw new ModelLoadException(path, $"pre-quantized checkpoints with quantization_config.quant_method = {method} are not read by the Hugging Face loader (GPTQ ones are); load the float model and quantize it with QuantServe");
        }
        string? act = j.String("hidden_act") ?? j.String("hidden_activation");
        if (act is not null && act is not ("silu" or "swish"))
            throw new ModelLoadException(path, $"hidden_act \"{act}\" is not supported (Llama-family models use silu)");
        if (j.Bool("mlp_bias") == true)
            throw new ModelLoadException(path, "mlp_bias = true is not supported (Llama-family MLPs have no biases)");
        bool qkvBias = modelType == "qwen2";
        if (modelType == "llama" && j.Bool("attention_bias") == true)
            throw new ModelLoadException(path, "attention_bias = true is not supported: it adds an o_proj bias, which QuantServe's Llama layers do not have");

        int hidden = j.RequiredInt("hidden_size");
        int heads = j.RequiredInt("num_attention_heads");
        if (heads <= 0) throw new ModelLoadException(path, $"num_attention_heads is {heads}");
        int headDim = j.Int("head_dim") ?? hidden / heads;
        if (j.Get("head_dim") is null && hidden % heads != 0)
            throw new ModelLoadException(path, $"hidden_size {hidden} is not a multiple of num_attention_heads {heads} and head_dim is not given");

        var (theta, scale, factors) = Rope(j, headDim);
        int maxPositions = j.RequiredInt("max_position_embeddings");
        int? window = SlidingWindowOf(j, modelType);

        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var p in j.Root.EnumerateObject())
            if (DisplayText(p.Value) is { } text) fields[p.Name] = text;

        return new HuggingFaceConfig
        {
            Path = path,
            GptqQuantization = gptq,
            ModelType = modelType,
            Architectures = architectures,
            HiddenSize = hidden,
            IntermediateSize = j.RequiredInt("intermediate_size"),
            Layers = j.RequiredInt("num_hidden_layers"),
            Heads = heads,
            KvHeads = j.Int("num_key_value_heads") ?? heads,
            HeadDim = headDim,
            VocabSize = j.RequiredInt("vocab_size"),
            MaxPositionEmbeddings = maxPositions,
            RopeTheta = theta,
            RopeScale = scale,
            RopeFrequencyFactors = factors,
            RmsNormEps = j.Double("rms_norm_eps") ?? 1e-6,
            TieWordEmbeddings = j.Bool("tie_word_embeddings") ?? false,
            QkvBias = qkvBias,
            SlidingWindow = window,
            BosTokenId = j.Int("bos_token_id"),
            EosTokenIds = j.IntOrList("eos_token_id"),
            DType = j.String("dtype") ?? j.String("torch_dtype"),
            Fields = fields,
        };
    }

    private static string ModelTypeOf(HuggingFaceJson j, List<string> architectures)
    {
        string? modelType = j.String("model_type");
        if (modelType is null)
        {
            // Old exporters omit model_type; the class name identifies the architecture then.
            var match = SupportedModelTypes.Where(p => architectures.Contains(p.Value)).Select(p => p.Key).FirstOrDefault();
            return match ?? throw new ModelLoadException(j.Path,
                architectures.Count == 0
                    ? "neither \"model_type\" nor \"architectures\" is given: cannot tell the architecture"
                    : $"unknown architecture {string.Join(", ", architectures)}: QuantServe reads {SupportedList}");
        }
        if (!SupportedModelTypes.ContainsKey(modelType))
            throw new ModelLoadException(j.Path, $"unknown architecture: model_type \"{modelType}\" is not one QuantServe reads ({SupportedList})");
        return modelType;
    }

    private static string SupportedList => string.Join(", ", SupportedModelTypes.Keys);

    /// <summary>
    /// RoPE settings: transformers 5 writes <c>rope_parameters {rope_type, rope_theta, factor, ...}</c>; earlier versions
    /// write <c>rope_theta</c> beside an optional <c>rope_scaling {type | rope_type, factor, ...}</c>. Types: default,
    /// linear (positions divided by factor) and llama3 (per-frequency divisors, <see cref="Llama3FrequencyFactors"/>).
    /// </summary>
    private static (double Theta, double Scale, float[]? Factors) Rope(HuggingFaceJson j, int headDim)
    {
        var parameters = j.Object("rope_parameters");
        var scaling = j.Object("rope_scaling");
        double theta = parameters?.Double("rope_theta") ?? j.Double("rope_theta") ?? 10000;
        double scale = 1;
        float[]? factors = null;
        foreach (var source in new[] { parameters, scaling })
        {
            if (source is not { } s) continue;
            string? type = s.String("rope_type") ?? s.String("type");
            switch (type)
            {
                case null or "default":
                    break;
                case "linear":
                    scale = Factor(j, s);
                    break;
                case "llama3":
                    double low = s.Double("low_freq_factor") ?? throw Missing(j, s, "low_freq_factor");
                    double high = s.Double("high_freq_factor") ?? throw Missing(j, s, "high_freq_factor");
                    int original = s.Int("original_max_position_embeddings") ?? throw Missing(j, s, "original_max_position_embeddings");
                    if (!(low > 0 && high > low && original > 0))
                        throw new ModelLoadException(j.Path, $"{s.Prefix}: llama3 RoPE needs 0 < low_freq_factor < high_freq_factor and original_max_position_embeddings > 0");
                    factors = Llama3FrequencyFactors(theta, headDim, Factor(j, s), low, high, original);
                    break;
                default:
                    throw new ModelLoadException(j.Path, $"RoPE scaling type \"{type}\" ({s.Prefix}rope_type) is not supported; QuantServe supports default, linear and llama3 RoPE");
            }
        }
        return (theta, scale, factors);
    }

    private static double Factor(HuggingFaceJson j, HuggingFaceJson s)
    {
        double factor = s.Double("factor") ?? throw Missing(j, s, "factor");
        if (!(factor >= 1)) throw new ModelLoadException(j.Path, $"{s.Prefix}factor {factor} must be at least 1");
        return factor;
    }

    private static ModelLoadException Missing(HuggingFaceJson j, HuggingFaceJson s, string field) =>
        new(j.Path, $"{s.Prefix}{field} is required for this RoPE scaling type");

    /// <summary>
    /// Llama 3.1's RoPE frequency divisors, as transformers computes them: with inverse frequency
    /// <c>f_i = θ^(−2i/d)</c> and wavelength <c>λ_i = 2π / f_i</c>, pairs with <c>λ_i &lt; original / high</c> keep their
    /// frequency (divisor 1), pairs with <c>λ_i &gt; original / low</c> are divided by <paramref name="factor"/>, and in
    /// between <c>s = (original / λ_i − low) / (high − low)</c> blends them: the new frequency is
    /// <c>(1 − s) · f_i / factor + s · f_i</c>, so the divisor is <c>1 / ((1 − s) / factor + s)</c>.
    /// </summary>
    public static float[] Llama3FrequencyFactors(double theta, int headDim, double factor, double low, double high, int original)
    {
        var result = new float[headDim / 2];
        double lowWavelength = original / low, highWavelength = original / high;
        for (int i = 0; i < result.Length; i++)
        {
            double wavelength = 2 * Math.PI / Math.Pow(theta, -2.0 * i / headDim);
            if (wavelength < highWavelength) result[i] = 1f;
            else if (wavelength > lowWavelength) result[i] = (float)factor;
            else
            {
                double s = (original / wavelength - low) / (high - low);
                result[i] = (float)(1 / ((1 - s) / factor + s));
            }
        }
        return result;
    }

    private static int? SlidingWindowOf(HuggingFaceJson j, string modelType)
    {
        int? window = j.Int("sliding_window");
        if (modelType == "qwen2")
        {
            // Qwen2 writes sliding_window even when it is off; only use_sliding_window turns it on.
            if (j.Bool("use_sliding_window") == true)
                throw new ModelLoadException(j.Path, "use_sliding_window = true is not supported for qwen2 (its window applies to some layers only)");
            return null;
        }
        if (window is <= 0) throw new ModelLoadException(j.Path, $"sliding_window {window} must be positive");
        return window;
    }

    /// <summary>
    /// The engine's hyper-parameters. HF checkpoints store q/k rows in rotate-half order, so <see cref="RopeStyle.Neox"/>.
    /// A sliding window that covers every layer is honoured by limiting the context to the window, inside which
    /// windowed and full attention are the same computation.
    /// </summary>
    public ModelConfig ToModelConfig()
    {
        var config = new ModelConfig
        {
            Architecture = ModelType,
            Dim = HiddenSize,
            HiddenDim = IntermediateSize,
            Layers = Layers,
            Heads = Heads,
            KvHeads = KvHeads,
            HeadDim = HeadDim,
            VocabSize = VocabSize,
            ContextLength = SlidingWindow is { } w ? Math.Min(w, MaxPositionEmbeddings) : MaxPositionEmbeddings,
            RopeTheta = (float)RopeTheta,
            Rope = RopeStyle.Neox,
            RopeScale = (float)RopeScale,
            RopeFrequencyFactors = RopeFrequencyFactors,
            NormEps = (float)RmsNormEps,
            TiedEmbeddings = TieWordEmbeddings,
        };
        config.Validate(Path);
        return config;
    }

    /// <summary>Display metadata: the config's scalar fields prefixed <c>config.</c>.</summary>
    public Dictionary<string, string> DisplayMetadata() =>
        Fields.ToDictionary(p => "config." + p.Key, p => p.Value, StringComparer.Ordinal);

    private static string? DisplayText(JsonElement v) => v.ValueKind switch
    {
        JsonValueKind.String => v.GetString(),
        JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False => v.GetRawText(),
        JsonValueKind.Array when v.EnumerateArray().All(e => e.ValueKind is JsonValueKind.String or JsonValueKind.Number)
            => string.Join(", ", v.EnumerateArray().Select(e => e.ToString())),
        _ => null,
    };
}
