using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Models;

/// <summary>The weights of one decoder layer. Norm weights and biases are small and held as floats.</summary>
public sealed class LayerWeights
{
    /// <summary>RMSNorm weight before attention [Dim].</summary>
    public required float[] AttnNorm { get; init; }
    /// <summary>Query projection [QDim × Dim].</summary>
    public required WeightMatrix Wq { get; init; }
    /// <summary>Key projection [KvDim × Dim].</summary>
    public required WeightMatrix Wk { get; init; }
    /// <summary>Value projection [KvDim × Dim].</summary>
    public required WeightMatrix Wv { get; init; }
    /// <summary>Attention output projection [Dim × QDim].</summary>
    public required WeightMatrix Wo { get; init; }
    /// <summary>Optional q/k/v biases (Qwen2).</summary>
    public float[]? Bq { get; init; }
    /// <summary>Optional key bias.</summary>
    public float[]? Bk { get; init; }
    /// <summary>Optional value bias.</summary>
    public float[]? Bv { get; init; }
    /// <summary>RMSNorm weight before the MLP [Dim].</summary>
    public required float[] FfnNorm { get; init; }
    /// <summary>SwiGLU gate projection W1 [HiddenDim × Dim].</summary>
    public required WeightMatrix Gate { get; init; }
    /// <summary>SwiGLU up projection W3 [HiddenDim × Dim].</summary>
    public required WeightMatrix Up { get; init; }
    /// <summary>SwiGLU down projection W2 [Dim × HiddenDim].</summary>
    public required WeightMatrix Down { get; init; }

    /// <summary>The layer's matrices in a fixed order (q, k, v, o, gate, up, down).</summary>
    public IEnumerable<WeightMatrix> Matrices => [Wq, Wk, Wv, Wo, Gate, Up, Down];
}

/// <summary>All weights of a Llama-family model.</summary>
public sealed class LlamaWeights
{
    /// <summary>Token embedding [Vocab × Dim]; rows are looked up (dequantized) per token.</summary>
    public required WeightMatrix TokenEmbedding { get; init; }
    /// <summary>Decoder layers.</summary>
    public required LayerWeights[] Layers { get; init; }
    /// <summary>Final RMSNorm weight [Dim].</summary>
    public required float[] FinalNorm { get; init; }
    /// <summary>Output head [Vocab × Dim]; the same object as <see cref="TokenEmbedding"/> when tied.</summary>
    public required WeightMatrix Output { get; init; }

    /// <summary>Every distinct matrix (the tied head counted once).</summary>
    public IEnumerable<WeightMatrix> Matrices
    {
        get
        {
            yield return TokenEmbedding;
            foreach (var l in Layers) foreach (var m in l.Matrices) yield return m;
            if (!ReferenceEquals(Output, TokenEmbedding)) yield return Output;
        }
    }
}
