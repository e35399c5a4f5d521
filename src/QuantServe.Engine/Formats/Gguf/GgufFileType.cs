namespace QuantServe.Engine.Formats.Gguf;

/// <summary>
/// llama.cpp's <c>general.file_type</c> numbering (<c>llama_ftype</c>): the overall quantization recipe of a file,
/// named as <c>llama-quantize</c> names it (Q4_K_M, Q8_0, …). Ids retired upstream (4–6, 33–35) have no name.
/// </summary>
public static class GgufFileType
{
    private static readonly (int Id, string Name)[] Table =
    [
        (0, "F32"), (1, "F16"), (2, "Q4_0"), (3, "Q4_1"), (7, "Q8_0"), (8, "Q5_0"), (9, "Q5_1"),
        (10, "Q2_K"), (11, "Q3_K_S"), (12, "Q3_K_M"), (13, "Q3_K_L"), (14, "Q4_K_S"), (15, "Q4_K_M"),
        (16, "Q5_K_S"), (17, "Q5_K_M"), (18, "Q6_K"), (19, "IQ2_XXS"), (20, "IQ2_XS"), (21, "Q2_K_S"),
        (22, "IQ3_XS"), (23, "IQ3_XXS"), (24, "IQ1_S"), (25, "IQ4_NL"), (26, "IQ3_S"), (27, "IQ3_M"),
        (28, "IQ2_S"), (29, "IQ2_M"), (30, "IQ4_XS"), (31, "IQ1_M"), (32, "BF16"), (36, "TQ1_0"), (37, "TQ2_0"),
        (38, "MXFP4_MOE"),
    ];

    /// <summary>The recipe name of <paramref name="id"/>, or null for an unknown id.</summary>
    public static string? Name(long id)
    {
        foreach (var (i, n) in Table) if (i == id) return n;
        return null;
    }

    /// <summary>The id of recipe <paramref name="name"/> (case-insensitive), or null.</summary>
    public static int? Id(string name)
    {
        foreach (var (i, n) in Table) if (string.Equals(n, name, StringComparison.OrdinalIgnoreCase)) return i;
        return null;
    }
}
