using QuantServe.Engine.Models;
using QuantServe.Engine.Quantization.Presets;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Quantization.Gguf;

/// <summary>
/// One tensor of a loaded model under its GGUF name: a matrix view (optionally with its rows to be permuted from
/// Hugging Face's rotate-half order into GGUF's interleaved RoPE order) or a small float vector.
/// </summary>
internal sealed class SourceTensor
{
    public required string Name { get; init; }
    public required long[] Dims { get; init; }
    public WeightMatrix? Matrix { get; init; }
    public float[]? Vector { get; init; }

    /// <summary>Heads whose rows are reordered rotate-half → interleaved (0: rows stay as they are).</summary>
    public int PermuteHeads { get; init; }

    public string SourceType => Matrix?.Format.Name ?? "F32";
    public GgmlType? SourceGgml => Matrix is null ? GgmlType.F32 : Matrix.Format.Ggml;
    public long SourceBytes => Matrix?.ByteCount ?? Vector!.Length * 4L;
    public PlanInput PlanInput => new(Name, Dims, SourceType, SourceGgml);

    /// <summary>
    /// The source row that becomes output row <paramref name="row"/>: with h heads of width d, output row
    /// <c>h·d + 2i + j</c> is source row <c>h·d + j·d/2 + i</c> (convert_hf_to_gguf.py's <c>permute</c>).
    /// </summary>
    public int SourceRow(int row)
    {
        if (PermuteHeads == 0) return row;
        int d = (int)(Dims[^1] / PermuteHeads);
        int h = row / d, r = row % d;
        return h * d + (r & 1) * (d / 2) + (r >> 1);
    }

    /// <summary>Every tensor of <paramref name="w"/> in GGUF naming; q/k rows permuted when <paramref name="permute"/>.</summary>
    public static List<SourceTensor> From(ModelConfig c, LlamaWeights w, bool permute)
    {
        var list = new List<SourceTensor>
        {
            Mat("token_embd.weight", w.TokenEmbedding),
            Vec("output_norm.weight", w.FinalNorm),
        };
        if (!ReferenceEquals(w.Output, w.TokenEmbedding)) list.Add(Mat("output.weight", w.Output));
        for (int l = 0; l < w.Layers.Length; l++)
        {
            var L = w.Layers[l];
            string p = $"blk.{l}.";
            list.Add(Vec(p + "attn_norm.weight", L.AttnNorm));
            list.Add(Mat(p + "attn_q.weight", L.Wq, permute ? c.Heads : 0));
            list.Add(Mat(p + "attn_k.weight", L.Wk, permute ? c.KvHeads : 0));
            list.Add(Mat(p + "attn_v.weight", L.Wv));
            list.Add(Mat(p + "attn_output.weight", L.Wo));
            if (L.Bq is { } bq) list.Add(Vec(p + "attn_q.bias", permute ? Permute(bq, c.Heads) : bq));
            if (L.Bk is { } bk) list.Add(Vec(p + "attn_k.bias", permute ? Permute(bk, c.KvHeads) : bk));
            if (L.Bv is { } bv) list.Add(Vec(p + "attn_v.bias", bv));
            list.Add(Vec(p + "ffn_norm.weight", L.FfnNorm));
            list.Add(Mat(p + "ffn_gate.weight", L.Gate));
            list.Add(Mat(p + "ffn_up.weight", L.Up));
            list.Add(Mat(p + "ffn_down.weight", L.Down));
        }
        return list;
    }

    private static SourceTensor Mat(string name, WeightMatrix m, int permuteHeads = 0) =>
        new() { Name = name, Dims = [m.Cols, m.Rows], Matrix = m, PermuteHeads = permuteHeads };

    private static SourceTensor Vec(string name, float[] v) => new() { Name = name, Dims = [v.Length], Vector = v };

    private static float[] Permute(float[] v, int heads)
    {
        var t = new SourceTensor { Name = "", Dims = [1, v.Length], PermuteHeads = heads };
        var result = new float[v.Length];
        for (int i = 0; i < v.Length; i++) result[i] = v[t.SourceRow(i)];
        return result;
    }
}
