using System.Text.RegularExpressions;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Quantization.Presets;

/// <summary>
/// A user rule for mixed precision: tensors whose GGUF name matches <see cref="Pattern"/> (a regular expression searched
/// anywhere in the name, as llama-quantize's <c>--tensor-type</c> does) get <see cref="Type"/>, or keep the source's
/// precision when <see cref="Type"/> is null. When several rules match a tensor the last one wins.
/// </summary>
public sealed class TensorTypeOverride
{
    private readonly Regex _regex;

    /// <summary>A rule; <paramref name="type"/> null means "keep the source precision".</summary>
    public TensorTypeOverride(string pattern, GgmlType? type)
    {
        if (string.IsNullOrWhiteSpace(pattern)) throw new ArgumentException("empty tensor pattern", nameof(pattern));
        try
        {
            _regex = new Regex(pattern, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"tensor pattern '{pattern}' is not a valid regular expression: {e.Message}", nameof(pattern));
        }
        Pattern = pattern;
        Type = type;
    }

    /// <summary>The regular expression.</summary>
    public string Pattern { get; }

    /// <summary>The type to use, or null to keep the source precision.</summary>
    public GgmlType? Type { get; }

    /// <summary>Whether the rule applies to tensor <paramref name="name"/>.</summary>
    public bool Matches(string name) => _regex.IsMatch(name);

    /// <summary>Parses <c>PATTERN=TYPE</c> (type names as in <see cref="GgufPresets.ParseTensorType"/>, or <c>keep</c>).</summary>
    public static TensorTypeOverride Parse(string rule)
    {
        int eq = rule?.LastIndexOf('=') ?? -1;
        if (eq <= 0 || eq == rule!.Length - 1)
            throw new ArgumentException($"tensor type rule '{rule}' must look like PATTERN=TYPE (for example attn_v=Q8_0)", nameof(rule));
        string type = rule[(eq + 1)..].Trim();
        return new TensorTypeOverride(rule[..eq].Trim(),
            string.Equals(type, "keep", StringComparison.OrdinalIgnoreCase) ? null : GgufPresets.ParseTensorType(type));
    }

    /// <inheritdoc />
    public override string ToString() => $"{Pattern}={Type?.ToString() ?? "keep"}";
}
