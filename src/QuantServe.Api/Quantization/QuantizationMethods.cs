using QuantServe.Engine.Quantization.Formats;
using QuantServe.Engine.Quantization.Methods;
using QuantServe.Engine.Quantization.Presets;
using QuantServe.Engine.Tensors;

namespace QuantServe.Api.Quantization;

/// <summary>
/// The methods a job may name and the pipeline each goes to: llama.cpp's presets (Q4_K_M, Q8_0, …) →
/// GgufQuantizer, any source; QuantServe's own types (int8, int4-g32, nf4, llm-int8, …) → RtnQuantizer, non-GGUF sources;
/// GPTQ types (gptq-int4-g128, …) → GptqPipeline, Hugging Face sources;
/// AWQ (awq-int4-g128, awq-int3-g128) → AwqQuantizer with the job's calibration text, Hugging Face or llama2.c sources.
/// </summary>
public static partial class QuantizationMethods
{
    /// <summary>The GGUF preset named <paramref name="method"/>, or null.</summary>
    public static GgufPreset? Preset(string? method)
    {
        if (string.IsNullOrWhiteSpace(method)) return null;
        // llama-quantize reads the bare k-quant names as their medium mix; jobs named Q4_K before the presets keep working.
        string name = method.Trim().ToUpperInvariant() switch { "Q3_K" => "Q3_K_M", "Q4_K" => "Q4_K_M", "Q5_K" => "Q5_K_M", var n => n };
        return GgufPresets.TryFind(name);
    }

    /// <summary>Whether <paramref name="method"/> names one of QuantServe's own (RTN) types; a preset name wins.</summary>
    public static bool IsRtn(string? method)
    {
        if (string.IsNullOrWhiteSpace(method) || Preset(method) is not null) return false;
        return Rtn(method) is not null;
    }

    private static RtnFormat? Rtn(string method)
    {
        // An absurd group size overflows the parser: that is an unknown name, not a server error.
        try { return RtnFormats.Parse(method.Trim()); }
        catch (Exception e) when (e is ArgumentException or OverflowException or FormatException) { return null; }
    }

    /// <summary>Whether <paramref name="method"/> names a GPTQ type (<c>gptq-int4-g128</c>, <c>gptq-int3-g128-act</c>, …).</summary>
    public static bool IsGptq(string? method) => GptqTypes.IsGptq(method?.Trim());

    /// <summary>Whether <paramref name="method"/> names an AWQ type (awq-int4-g128, awq-int3-g128, awq-intB-gG).</summary>
    public static bool IsAwq(string? method) => AwqTypes.Parse(method) is not null;

    /// <summary>The canonical spelling: preset names upper case, RTN, GPTQ and AWQ types lower case; null when unknown.</summary>
    public static string? Canonical(string? method)
        => Preset(method) is { } p ? p.Name : IsRtn(method) ? Rtn(method!)!.Name
            : IsGptq(method) ? GptqTypes.Name(GptqTypes.Parse(method!.Trim()))
            : AwqTypes.Parse(method) is { } a ? AwqTypes.Name(a) : null;

    /// <summary>Every valid name (parameterised integer types accept any group size: intB[-gG|-pt][-asym]).</summary>
    public static string ValidNames
        => $"GGUF presets: {GgufPresets.Names}; QuantServe types (non-GGUF sources): "
           + string.Join(", ", RtnFormats.Common.Select(f => f.Name).Distinct(StringComparer.OrdinalIgnoreCase))
           + " (intB-gG[-asym] with any bits 2-8 and group size); GPTQ (Hugging Face sources, calibrated on calibration_text or the built-in text): "
           + "gptq-int4-g128, gptq-int3-g128, gptq-int4-g128-act, ... (gptq-intB[-gG][-act][-asym], B in 2, 3, 4, 8)"
           + "; AWQ (Hugging Face or llama2.c sources, calibration_text): " + string.Join(", ", AwqTypes.Common);

    /// <summary>Why <paramref name="method"/> cannot quantize a source of <paramref name="sourceFormat"/>, or null.</summary>
    public static string? SourceProblem(string method, string? sourceFormat)
        => IsRtn(method) && sourceFormat == "gguf"
            ? $"'{method}' is one of QuantServe's own types, produced from Hugging Face, llama2.c or QuantServe folders, not from GGUF files; use a GGUF preset ({GgufPresets.Names}) for a GGUF source"
            : IsGptq(method) && sourceFormat != "safetensors"
                ? $"'{method}' is a GPTQ type, written as a Hugging Face GPTQ checkpoint from a Hugging Face (safetensors) model, not from a {sourceFormat ?? "unknown"} source"
                : IsAwq(method) && sourceFormat is not ("safetensors" or "llama2c")
                    ? $"'{method}' is calibrated from a full-precision Hugging Face or llama2.c model, not from a {sourceFormat ?? "unknown"} source"
                    : null;

    /// <summary>
    /// Applies a job's <c>group_size</c> to <paramref name="method"/> by its name: an integer type without a group
    /// (<c>int4</c>, <c>gptq-int4</c>, <c>int4-asym</c>) gains <c>-gN</c> after its <c>intB</c> part (<c>int4-g64</c>,
    /// <c>gptq-int4-g64</c>, <c>int4-g64-asym</c>); one that already names the same group is unchanged. A different
    /// group, a per-tensor type, a type without an <c>intB</c> part (nf4, fp4, llm-int8) or a GGUF preset (fixed ggml
    /// block sizes) cannot take a group size: <paramref name="problem"/> says why and null is returned.
    /// </summary>
    public static string? WithGroupSize(string? method, int? groupSize, out string? problem)
    {
        problem = null;
        if (groupSize is null || string.IsNullOrWhiteSpace(method)) return method;
        if (groupSize is < 1 or > 1 << 16)
        {
            problem = $"group_size {groupSize} is out of range: give 1 to {1 << 16} columns per group";
            return null;
        }
        if (Preset(method) is { } preset)
        {
            problem = $"'{preset.Name}' is a GGUF preset: ggml types have fixed block sizes, so group_size does not apply";
            return null;
        }
        var parts = method.Trim().Split('-').ToList();
        int bits = parts.FindIndex(p => IntPart().IsMatch(p));
        int group = parts.FindIndex(p => GroupPart().IsMatch(p));
        if (group >= 0)
        {
            if (int.Parse(parts[group].AsSpan(1), System.Globalization.CultureInfo.InvariantCulture) == groupSize) return method.Trim();
            problem = $"'{method}' names group size {parts[group][1..]} but group_size is {groupSize}; give one or make them agree";
            return null;
        }
        if (parts.Any(p => p.Equals("pt", StringComparison.OrdinalIgnoreCase)))
        {
            problem = $"'{method}' is per-tensor and cannot take group_size {groupSize}";
            return null;
        }
        if (bits < 0)
        {
            // An unknown name is the method check's to report, with the list of valid ones.
            if (Canonical(method) is null) return method.Trim();
            problem = $"'{method}' has a fixed layout (no intB part to group); group_size applies to integer types such as int4 or gptq-int4";
            return null;
        }
        parts.Insert(bits + 1, $"g{groupSize}");
        return string.Join('-', parts);
    }

    [System.Text.RegularExpressions.GeneratedRegex("^[iI][nN][tT][0-9]+$")]
    private static partial System.Text.RegularExpressions.Regex IntPart();

    [System.Text.RegularExpressions.GeneratedRegex("^[gG][0-9]+$")]
    private static partial System.Text.RegularExpressions.Regex GroupPart();

    /// <summary>Bytes of a model on disk: a file's length or the total of a folder's files.</summary>
    public static long SizeOnDisk(string path)
        => File.Exists(path) ? new FileInfo(path).Length
            : Directory.Exists(path) ? new DirectoryInfo(path).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length) : 0;
}
