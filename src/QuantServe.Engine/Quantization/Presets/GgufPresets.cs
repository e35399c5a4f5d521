using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Quantization.Presets;

/// <summary>The file types QuantServe can produce, with llama.cpp's ids and default types.</summary>
public static class GgufPresets
{
    /// <summary>Every preset, in llama-quantize's listing order.</summary>
    public static IReadOnlyList<GgufPreset> All { get; } =
    [
        new("Q4_0", 2, GgmlType.Q4_0, "4.5 bpw legacy blocks of 32 (scale)"),
        new("Q4_1", 3, GgmlType.Q4_1, "5.0 bpw legacy blocks of 32 (scale + min)"),
        new("Q5_0", 8, GgmlType.Q5_0, "5.5 bpw legacy blocks of 32 (scale)"),
        new("Q5_1", 9, GgmlType.Q5_1, "6.0 bpw legacy blocks of 32 (scale + min)"),
        new("Q2_K", 10, GgmlType.Q2_K, "k-quant mix around Q2_K (attn_v/ffn_down/attn_output Q3_K)"),
        new("Q3_K_S", 11, GgmlType.Q3_K, "Q3_K everywhere"),
        new("Q3_K_M", 12, GgmlType.Q3_K, "Q3_K with attn_v/attn_output/ffn_down promoted to Q4_K/Q5_K"),
        new("Q3_K_L", 13, GgmlType.Q3_K, "Q3_K with attn_v/attn_output/ffn_down at Q5_K"),
        new("Q4_K_S", 14, GgmlType.Q4_K, "Q4_K with the first attn_v/ffn_down layers at Q5_K"),
        new("Q4_K_M", 15, GgmlType.Q4_K, "Q4_K with half of attn_v/ffn_down at Q6_K"),
        new("Q5_K_S", 16, GgmlType.Q5_K, "Q5_K everywhere"),
        new("Q5_K_M", 17, GgmlType.Q5_K, "Q5_K with half of attn_v/ffn_down at Q6_K"),
        new("Q6_K", 18, GgmlType.Q6_K, "Q6_K everywhere"),
        new("Q8_0", 7, GgmlType.Q8_0, "8.5 bpw blocks of 32"),
        new("F16", 1, GgmlType.F16, "IEEE half precision, no quantization"),
        new("BF16", 32, GgmlType.BF16, "bfloat16, no quantization"),
        new("F32", 0, GgmlType.F32, "single precision, no quantization"),
    ];

    /// <summary>The names of every preset, comma separated (for error messages and help).</summary>
    public static string Names => string.Join(", ", All.Select(p => p.Name));

    /// <summary>The preset named <paramref name="name"/> (case-insensitive), or null.</summary>
    public static GgufPreset? TryFind(string name) =>
        All.FirstOrDefault(p => string.Equals(p.Name, name?.Trim(), StringComparison.OrdinalIgnoreCase));

    /// <summary>The preset named <paramref name="name"/>; an unknown name throws <see cref="ArgumentException"/> listing the valid ones.</summary>
    public static GgufPreset Find(string name) =>
        TryFind(name) ?? throw new ArgumentException($"unknown quantization type '{name}'; valid types: {Names}", nameof(name));

    /// <summary>
    /// The ggml type named <paramref name="name"/> that a tensor may be stored in (for per-tensor rules):
    /// F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K … Q6_K. Unknown names throw, listing the valid ones.
    /// </summary>
    public static GgmlType ParseTensorType(string name)
    {
        foreach (var t in TensorTypes)
            if (string.Equals(t.ToString(), name?.Trim(), StringComparison.OrdinalIgnoreCase)) return t;
        throw new ArgumentException($"unknown tensor type '{name}'; valid types: {string.Join(", ", TensorTypes)}", nameof(name));
    }

    /// <summary>The ggml types a tensor can be written in.</summary>
    public static IReadOnlyList<GgmlType> TensorTypes { get; } =
    [
        GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1, GgmlType.Q8_0,
        GgmlType.Q2_K, GgmlType.Q3_K, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K,
    ];
}
