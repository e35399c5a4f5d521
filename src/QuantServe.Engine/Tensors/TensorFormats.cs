namespace QuantServe.Engine.Tensors;

/// <summary>The registry of storage formats, by ggml type and by name.</summary>
public static class TensorFormats
{
    private static readonly Dictionary<GgmlType, TensorFormat> ByGgml = new();
    private static readonly Dictionary<string, TensorFormat> ByName = new(StringComparer.OrdinalIgnoreCase);

    static TensorFormats()
    {
        // One line per format; each format's file holds its whole definition.
        foreach (var f in BuiltIn()) Register(f);
    }

    private static IEnumerable<TensorFormat> BuiltIn() =>
        FloatFormats.All.Concat(QuantServe.Engine.Quantization.Formats.QuantFormats.All);

    /// <summary>Adds a format to the registry (also used by tests for experimental formats).</summary>
    public static void Register(TensorFormat format)
    {
        lock (ByName)
        {
            ByName[format.Name] = format;
            if (format.Ggml is { } g) ByGgml[g] = format;
        }
    }

    /// <summary>The format for a ggml type id, or null when QuantServe cannot compute on that type.</summary>
    public static TensorFormat? ForGgml(GgmlType type) { lock (ByName) return ByGgml.GetValueOrDefault(type); }

    /// <summary>The format with the given type name (case-insensitive), or null.</summary>
    public static TensorFormat? ForName(string name)
    {
        lock (ByName)
        {
            if (ByName.TryGetValue(name, out var f)) return f;
            // Parameterised formats (int4-g96, int3-g48-asym, …) are created on first use; the canonical name is registered
            // too, so int8-g0 and int8 resolve to the same instance.
            var parsed = QuantServe.Engine.Quantization.Formats.RtnFormats.Parse(name);
            if (parsed == null) return null;
            if (ByName.TryGetValue(parsed.Name, out var known)) parsed = (QuantServe.Engine.Quantization.Formats.RtnFormat)known;
            ByName[parsed.Name] = parsed;
            ByName[name] = parsed;
            return parsed;
        }
    }

    /// <summary>Every registered format.</summary>
    public static IReadOnlyList<TensorFormat> All { get { lock (ByName) return ByName.Values.Distinct().ToList(); } }
}
