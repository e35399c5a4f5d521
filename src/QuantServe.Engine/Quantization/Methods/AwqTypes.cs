using System.Globalization;
using System.Text.RegularExpressions;

namespace QuantServe.Engine.Quantization.Methods;

/// <summary>AWQ type names: <c>awq-int4-g128</c>, <c>awq-int3-g128</c> (any group size: <c>awq-intB-gG</c>).</summary>
public static partial class AwqTypes
{
    /// <summary>The types offered by name in help texts.</summary>
    public static IReadOnlyList<string> Common => ["awq-int4-g128", "awq-int3-g128"];

    [GeneratedRegex(@"^awq-int(?<b>[34])-g(?<g>\d{1,5})$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex NamePattern();

    /// <summary>The options a type name stands for, or null when <paramref name="name"/> is not an AWQ type.</summary>
    public static AwqOptions? Parse(string? name)
    {
        var m = NamePattern().Match(name?.Trim() ?? "");
        if (!m.Success) return null;
        int g = int.Parse(m.Groups["g"].Value, CultureInfo.InvariantCulture);
        return g <= 0 ? null : new AwqOptions { Bits = m.Groups["b"].Value[0] - '0', GroupSize = g };
    }

    /// <summary>The canonical name of <paramref name="o"/>'s type.</summary>
    public static string Name(AwqOptions o) => $"awq-int{o.Bits}-g{o.GroupSize}";
}
