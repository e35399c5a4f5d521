using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Quantization.Presets;

/// <summary>
/// llama.cpp's per-tensor type choice (<c>llama_tensor_get_type</c> in llama-quant.cpp) for dense Llama-family models
/// and the non-IQ presets: the output head (or the token embedding when it doubles as the head) goes to Q6_K (Q8_0 stays
/// Q8_0; a width not divisible by the block goes to Q8_0); attn_v, ffn_down and attn_output are promoted per preset,
/// attn_v and ffn_down by layer with <see cref="UseMoreBits"/>; a type whose block does not divide the row width falls
/// back (Q2_K/Q3_K → Q4_0, Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0, and F16 when even that does not fit).
/// Like llama.cpp, the attn_v and ffn_down rules count tensors as they are visited, so call <see cref="Choose"/> in
/// llama.cpp's tensor order (<see cref="TensorOrder"/>). Mixture-of-experts and Falcon rules are not ported; the 70B rule
/// applies to 80-layer models with grouped-query attention (llama.cpp's LLM_TYPE_70B for the llama architecture).
/// </summary>
public sealed class LlamaTensorTypeRules
{
    private readonly GgufPreset _preset;
    private readonly int _layers;
    private readonly int _gqa;
    private readonly int _attentionWvCount;
    private readonly bool _hasOutput;
    private readonly bool _hasImatrix;
    private int _iAttentionWv;
    private int _iFfnDown;

    /// <summary>Rules for one model: <paramref name="layers"/> blocks, <paramref name="gqa"/> = heads / kv_heads,
    /// <paramref name="attentionWvCount"/> attn_v tensors, whether a separate <c>output.weight</c> exists, and whether an
    /// importance matrix is used.</summary>
    public LlamaTensorTypeRules(GgufPreset preset, int layers, int gqa, int attentionWvCount, bool hasOutput, bool hasImatrix)
    {
        _preset = preset;
        _layers = layers;
        _gqa = gqa;
        _attentionWvCount = attentionWvCount;
        _hasOutput = hasOutput;
        _hasImatrix = hasImatrix;
    }

    /// <summary>Tensors that fell back to another type because the row width did not fit the chosen block.</summary>
    public int FallbackCount { get; private set; }

    /// <summary>llama.cpp's "more bits" layer selection: the first and last eighth of the layers and every third in between.</summary>
    public static bool UseMoreBits(int layer, int layers) =>
        layer < layers / 8 || layer >= 7 * layers / 8 || (layer - layers / 8) % 3 == 2;

    /// <summary>Whether llama-quantize quantizes a tensor at all: a 2-D <c>*weight</c> that is not a norm.</summary>
    public static bool IsQuantizable(string name, int dims) =>
        dims >= 2 && name.EndsWith("weight", StringComparison.Ordinal) && !name.Contains("_norm.weight", StringComparison.Ordinal);

    /// <summary>llama.cpp's tensor order (its loader's weight map): tensors outside blocks first, then block by block
    /// (numerically), by name within each group (ordinal).</summary>
    public static IComparer<string> TensorOrder { get; } = Comparer<string>.Create((a, b) =>
    {
        int la = Layer(a), lb = Layer(b);
        return la != lb ? la.CompareTo(lb) : string.CompareOrdinal(a, b);
    });

    /// <summary>The block index in a <c>blk.N.</c> name, or −1.</summary>
    public static int Layer(string name)
    {
        if (!name.StartsWith("blk.", StringComparison.Ordinal)) return -1;
        int end = name.IndexOf('.', 4);
        return end > 4 && int.TryParse(name.AsSpan(4, end - 4), out int l) ? l : -1;
    }

    /// <summary>
    /// The type of quantizable tensor <paramref name="name"/> with rows of <paramref name="cols"/> elements, and whether it
    /// is a fallback (llama.cpp then ignores user overrides for it).
    /// </summary>
    public (GgmlType Type, bool Fallback) Choose(string name, long cols)
    {
        var t = _preset.DefaultType;
        if (!_preset.IsQuantized) return (t, false);
        string p = _preset.Name;

        if (name == "output.weight" || (!_hasOutput && name == "token_embd.weight"))
        {
            if (cols % BlockSize(t) != 0) t = GgmlType.Q8_0;
            else if (t != GgmlType.Q8_0) t = GgmlType.Q6_K;
        }
        else if (name == "token_embd.weight")
        {
            // Only the IQ and ternary presets change the embedding.
        }
        else if (name.Contains("attn_v.weight", StringComparison.Ordinal))
        {
            if (p == "Q2_K") t = _gqa >= 4 ? GgmlType.Q4_K : GgmlType.Q3_K;
            else if (p == "Q3_K_M") t = _iAttentionWv < 2 ? GgmlType.Q5_K : GgmlType.Q4_K;
            else if (p == "Q3_K_L") t = GgmlType.Q5_K;
            else if (p is "Q4_K_M" or "Q5_K_M" && UseMoreBits(_iAttentionWv, _attentionWvCount)) t = GgmlType.Q6_K;
            else if (p == "Q4_K_S" && _iAttentionWv < 4) t = GgmlType.Q5_K;
            // llama.cpp's 70B type (80 layers with grouped-query attention): attn_v is 8× smaller than attn_q, so more bits are cheap.
            if (_layers == 80 && _gqa > 1 && t is GgmlType.Q3_K or GgmlType.Q4_K) t = GgmlType.Q5_K;
            _iAttentionWv++;
        }
        else if (name.Contains("ffn_down", StringComparison.Ordinal))
        {
            int i = _iFfnDown, n = _layers;
            if (p == "Q2_K") t = GgmlType.Q3_K;
            else if (p == "Q3_K_M") t = i < n / 16 ? GgmlType.Q5_K : GgmlType.Q4_K;
            else if (p == "Q3_K_L") t = GgmlType.Q5_K;
            else if (p == "Q4_K_M") { if (UseMoreBits(i, n)) t = GgmlType.Q6_K; }
            else if (p == "Q5_K_M" && UseMoreBits(i, n)) t = GgmlType.Q6_K;
            else if (p == "Q4_K_S" && i < n / 8) t = GgmlType.Q5_K;
            else if (p is "Q4_0" or "Q5_0" && _hasImatrix && i < n / 8) t = p == "Q4_0" ? GgmlType.Q4_1 : GgmlType.Q5_1;
            _iFfnDown++;
        }
        else if (name.Contains("attn_output.weight", StringComparison.Ordinal))
        {
            if (p == "Q2_K") t = GgmlType.Q3_K;
            else if (p == "Q3_K_M") t = GgmlType.Q4_K;
            else if (p == "Q3_K_L") t = GgmlType.Q5_K;
        }
        else if (name.Contains("attn_qkv.weight", StringComparison.Ordinal))
        {
            if (p is "Q3_K_M" or "Q3_K_L") t = GgmlType.Q4_K;
            else if (p == "Q4_K_M") t = GgmlType.Q5_K;
            else if (p == "Q5_K_M") t = GgmlType.Q6_K;
        }

        if (cols % BlockSize(t) == 0) return (t, false);
        // Upstream now sends Q2_K/Q3_K to IQ4_NL, which QuantServe cannot write; llama.cpp before IQ4_NL used Q4_0.
        t = t switch
        {
            GgmlType.Q2_K or GgmlType.Q3_K => GgmlType.Q4_0,
            GgmlType.Q4_K => GgmlType.Q5_0,
            GgmlType.Q5_K => GgmlType.Q5_1,
            GgmlType.Q6_K => GgmlType.Q8_0,
            _ => t,
        };
        if (cols % BlockSize(t) != 0) t = GgmlType.F16;
        FallbackCount++;
        return (t, true);
    }

    /// <summary>Elements per block of <paramref name="t"/>.</summary>
    public static int BlockSize(GgmlType t) => GgmlTypeInfo.Geometry(t)?.BlockSize ?? 1;
}
