using QuantServe.Engine.Formats.HuggingFace;
using QuantServe.Engine.Models;

namespace QuantServe.Engine.Formats.Gptq;

/// <summary>
/// config.json's <c>quantization_config</c> of a GPTQ checkpoint: <c>{"quant_method": "gptq", "bits", "group_size",
/// "desc_act", "sym", "checkpoint_format": "gptq" | "gptq_v2"}</c> (transformers' GPTQConfig names).
/// </summary>
public sealed record GptqQuantizationConfig
{
    /// <summary>Bits per weight: 2, 3, 4 or 8.</summary>
    public int Bits { get; init; } = 4;

    /// <summary>Input columns per group, or −1 for one group per output row.</summary>
    public int GroupSize { get; init; } = 128;

    /// <summary>Activation order was used (g_idx is then a real permutation of groups).</summary>
    public bool DescAct { get; init; }

    /// <summary>Symmetric grid.</summary>
    public bool Symmetric { get; init; } = true;

    /// <summary><c>gptq</c> (v1: zero points stored minus one) or <c>gptq_v2</c>.</summary>
    public string CheckpointFormat { get; init; } = "gptq";

    /// <summary>Whether stored zero points are the true zero minus one.</summary>
    public bool ZerosMinusOne => CheckpointFormat == "gptq";

    /// <summary>Reads the object (quant_method already known to be gptq); throws <see cref="ModelLoadException"/> on unsupported values.</summary>
    internal static GptqQuantizationConfig Parse(HuggingFaceJson q)
    {
        int bits = q.Int("bits") ?? throw new ModelLoadException(q.Path, $"required field \"{q.Prefix}bits\" is missing");
        if (bits is not (2 or 3 or 4 or 8)) throw new ModelLoadException(q.Path, $"GPTQ bits = {bits} is not supported (2, 3, 4 or 8)");
        int group = q.Int("group_size") ?? 128;
        if (group == 0 || group < -1) throw new ModelLoadException(q.Path, $"GPTQ group_size = {group} must be -1 or positive");
        string format = q.String("checkpoint_format") ?? "gptq";
        if (format is not ("gptq" or "gptq_v2"))
            throw new ModelLoadException(q.Path, $"GPTQ checkpoint_format \"{format}\" is not supported (gptq or gptq_v2)");
        if (q.Bool("is_marlin_format") == true || (q.String("checkpoint_format") ?? "") == "marlin")
            throw new ModelLoadException(q.Path, "Marlin-packed GPTQ checkpoints are not supported");
        return new GptqQuantizationConfig
        {
            Bits = bits, GroupSize = group, DescAct = q.Bool("desc_act") ?? false, Symmetric = q.Bool("sym") ?? true, CheckpointFormat = format,
        };
    }

    /// <summary>The object as written into config.json.</summary>
    public Dictionary<string, object> ToJson() => new()
    {
        ["quant_method"] = "gptq",
        ["bits"] = Bits,
        ["group_size"] = GroupSize,
        ["desc_act"] = DescAct,
        ["sym"] = Symmetric,
        ["checkpoint_format"] = CheckpointFormat,
        ["damp_percent"] = 0.01,
        ["true_sequential"] = true,
    };

    /// <summary>QuantServe's type name: <c>gptq-int4-g128[-act][-asym]</c>.</summary>
    public string TypeName => $"gptq-int{Bits}" + (GroupSize > 0 ? $"-g{GroupSize}" : "") + (DescAct ? "-act" : "") + (Symmetric ? "" : "-asym");
}
