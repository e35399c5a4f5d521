using System.Globalization;
using System.Text.RegularExpressions;

namespace QuantServe.Engine.Quantization.Methods;

/// <summary>
/// GPTQ type names: <c>gptq-intB[-gG][-act][-asym]</c> with B ∈ {2, 3, 4, 8}; no <c>-gG</c> means one group per row
/// (group_size −1); <c>-act</c> is activation order (desc_act), <c>-act-static</c> with static groups; <c>-asym</c> an asymmetric grid (the default is symmetric,
/// as GPTQModel's). Examples: <c>gptq-int4-g128</c>, <c>gptq-int3-g128</c>, <c>gptq-int4-g128-act</c>.
/// </summary>
public static partial class GptqTypes
{
    [GeneratedRegex(@"^gptq-int(?<b>[2348])(?:-g(?<g>\d{1,6}))?(?:(?<act>-act)(?<static>-static)?)?(?<asym>-asym)?$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex Pattern();

    /// <summary>Whether <paramref name="type"/> is a GPTQ type name.</summary>
    public static bool IsGptq(string? type) => type is not null && Pattern().IsMatch(type);

    /// <summary>The options a type name stands for; throws <see cref="ArgumentException"/> when it is not one.</summary>
    public static GptqOptions Parse(string type)
    {
        var m = Pattern().Match(type ?? "");
        if (!m.Success) throw new ArgumentException($"'{type}' is not a GPTQ type (gptq-intB[-gG][-act][-asym], B in 2, 3, 4, 8; e.g. gptq-int4-g128)");
        int group = m.Groups["g"].Success ? int.Parse(m.Groups["g"].Value, CultureInfo.InvariantCulture) : -1;
        if (group == 0) throw new ArgumentException($"'{type}': group size must be positive");
        var options = new GptqOptions
        {
            Bits = m.Groups["b"].Value[0] - '0', GroupSize = group, ActOrder = m.Groups["act"].Success, StaticGroups = m.Groups["static"].Success,
            Symmetric = !m.Groups["asym"].Success,
        };
        options.Validate();
        return options;
    }

    /// <summary>The canonical name of <paramref name="options"/>.</summary>
    public static string Name(GptqOptions options) =>
        $"gptq-int{options.Bits}" + (options.GroupSize > 0 ? $"-g{options.GroupSize}" : "") + (options.ActOrder ? options.StaticGroups ? "-act-static" : "-act" : "") + (options.Symmetric ? "" : "-asym");
}
