using System.Text.Json;
using System.Text.Json.Serialization;
using QuantServe.Engine.Formats.HuggingFace;
using QuantServe.Engine.Models;

namespace QuantServe.Engine.Formats.QuantizedFolder;

/// <summary>
/// QuantServe's quantized model folder (format <c>quantserve-rtn</c>, version 1):
/// <list type="bullet">
/// <item><c>model.safetensors</c>: every weight matrix stored in a QuantServe format as one U8 tensor
/// <c>&lt;name&gt;.qdata</c> of shape [rows, row_bytes] holding the format's row-packed bytes verbatim (scales, zero points
/// and codes of a row together, as the format's XML docs describe), so a loaded matrix points straight into the mapped
/// file; matrices kept in a float format (F32/F16) stored under their own name with that dtype; norms and biases as F32.
/// Names follow Hugging Face Llama naming (<c>model.layers.0.self_attn.q_proj.weight</c>, …). q/k rows are in the
/// RoPE pairing order <c>model_config.Rope</c> names (llama2.c and GGUF sources keep their interleaved order).</item>
/// <item><c>quantization_config.json</c>: format, version, method, the default type, per-tensor type/shape/row bytes,
/// the full model configuration QuantServe runs with, the stop tokens and chat template, and the tokenizer file.</item>
/// <item>The source's tokenizer files (tokenizer.json + tokenizer_config.json …, or a llama2.c <c>tok*.bin</c>) and
/// config.json (copied, or for a llama2.c source written to describe it), for people and other tools.</item>
/// </list>
/// </summary>
public static class QuantizedFolderLayout
{
    /// <summary>The configuration file whose presence marks a quantized folder.</summary>
    public const string ConfigFileName = "quantization_config.json";

    /// <summary>The tensor file.</summary>
    public const string WeightsFileName = "model.safetensors";

    /// <summary>The <c>format</c> value.</summary>
    public const string FormatName = "quantserve-rtn";

    /// <summary>The current layout version.</summary>
    public const int Version = 1;

    /// <summary>Suffix of a packed matrix's tensor name.</summary>
    public const string PackedSuffix = ".qdata";

    /// <summary>Whether <paramref name="folder"/> holds a quantized model.</summary>
    public static bool IsQuantizedFolder(string folder) => File.Exists(Path.Combine(folder, ConfigFileName));

    /// <summary>The names of a layer's tensors: (q, k, v, o, gate, up, down, attention norm, MLP norm, q bias, k bias, v bias).</summary>
    public static LayerNames Layer(int layer) => new(
        HuggingFaceTensorLayout.Layer(layer, "self_attn.q_proj.weight"),
        HuggingFaceTensorLayout.Layer(layer, "self_attn.k_proj.weight"),
        HuggingFaceTensorLayout.Layer(layer, "self_attn.v_proj.weight"),
        HuggingFaceTensorLayout.Layer(layer, "self_attn.o_proj.weight"),
        HuggingFaceTensorLayout.Layer(layer, "mlp.gate_proj.weight"),
        HuggingFaceTensorLayout.Layer(layer, "mlp.up_proj.weight"),
        HuggingFaceTensorLayout.Layer(layer, "mlp.down_proj.weight"),
        HuggingFaceTensorLayout.Layer(layer, "input_layernorm.weight"),
        HuggingFaceTensorLayout.Layer(layer, "post_attention_layernorm.weight"),
        HuggingFaceTensorLayout.Layer(layer, "self_attn.q_proj.bias"),
        HuggingFaceTensorLayout.Layer(layer, "self_attn.k_proj.bias"),
        HuggingFaceTensorLayout.Layer(layer, "self_attn.v_proj.bias"));

    /// <summary>JSON settings for the configuration file (ModelConfig as camel-case properties, enums as strings).</summary>
    public static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Converters = { new JsonStringEnumConverter() },
        AllowTrailingCommas = true,
        ReadCommentHandling = JsonCommentHandling.Skip,
    };
}

/// <summary>Tensor names of one layer.</summary>
public sealed record LayerNames(string Q, string K, string V, string O, string Gate, string Up, string Down,
    string AttnNorm, string FfnNorm, string QBias, string KBias, string VBias);

/// <summary>The contents of <c>quantization_config.json</c>.</summary>
public sealed record QuantizationConfig
{
    /// <summary>Always <see cref="QuantizedFolderLayout.FormatName"/>.</summary>
    public string Format { get; init; } = QuantizedFolderLayout.FormatName;

    /// <summary>Layout version.</summary>
    public int Version { get; init; } = QuantizedFolderLayout.Version;

    /// <summary>Quantization method (<c>rtn</c>: round to nearest, no calibration).</summary>
    public string Method { get; init; } = "rtn";

    /// <summary>The type of the layer matrices.</summary>
    public required string Type { get; init; }

    /// <summary>The type of the token embedding (and of the untied output head).</summary>
    public required string EmbeddingType { get; init; }

    /// <summary>Where the model came from and its source format.</summary>
    public string? Source { get; init; }

    /// <summary>The source's format (<c>safetensors</c>, <c>llama2c</c>, …).</summary>
    public string? SourceFormat { get; init; }

    /// <summary>The configuration the model runs with.</summary>
    public required ModelConfig ModelConfig { get; init; }

    /// <summary>Tokenizer file name in the folder (<c>tokenizer.json</c> or a llama2.c <c>tok*.bin</c>).</summary>
    public required string Tokenizer { get; init; }

    /// <summary>Token ids that end generation.</summary>
    public IReadOnlyList<int> StopTokenIds { get; init; } = [];

    /// <summary>The model's chat template, if any.</summary>
    public string? ChatTemplate { get; init; }

    /// <summary>Every matrix: its type, shape and bytes per row.</summary>
    public required Dictionary<string, QuantizedTensorEntry> Tensors { get; init; }
}

/// <summary>One matrix in <see cref="QuantizationConfig.Tensors"/>.</summary>
/// <param name="Type">Format name (<c>int4-g32</c>, <c>nf4</c>, <c>F16</c>, …).</param>
/// <param name="Rows">Output features.</param>
/// <param name="Cols">Input features.</param>
/// <param name="RowBytes">Bytes per stored row.</param>
/// <param name="Bits">Bits per code (0 for float formats).</param>
/// <param name="GroupSize">Weights per scale (0: per row or not grouped).</param>
public sealed record QuantizedTensorEntry(
    [property: JsonPropertyName("type")] string Type,
    [property: JsonPropertyName("rows")] int Rows,
    [property: JsonPropertyName("cols")] int Cols,
    [property: JsonPropertyName("row_bytes")] long RowBytes,
    [property: JsonPropertyName("bits")] int Bits,
    [property: JsonPropertyName("group_size")] int GroupSize);
