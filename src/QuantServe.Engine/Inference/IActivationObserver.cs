namespace QuantServe.Engine.Inference;

/// <summary>Which linear layers of a block read an input: matrices that share an input share one observation.</summary>
public enum LinearInput
{
    /// <summary>The normed residual read by q, k and v (attn_q/attn_k/attn_v).</summary>
    AttentionQkv,
    /// <summary>The attention output read by the output projection (attn_output).</summary>
    AttentionOutput,
    /// <summary>The normed residual read by gate and up (ffn_gate/ffn_up).</summary>
    FfnGateUp,
    /// <summary>SiLU(gate)·up read by the down projection (ffn_down).</summary>
    FfnDown,
}

/// <summary>
/// Receives the input rows of each linear layer during <see cref="LlamaModel.Forward(System.ReadOnlySpan{SequenceChunk}, System.Span{float}, bool)"/>
/// (calibration statistics: importance matrices, GPTQ Hessians, AWQ magnitudes). Called on the forward thread, before the
/// matrices consume the input; the span is only valid during the call.
/// </summary>
public interface IActivationObserver
{
    /// <summary><paramref name="rows"/> is <paramref name="tokens"/> × <paramref name="width"/> row-major: one input vector per token.</summary>
    void Observe(int layer, LinearInput input, ReadOnlySpan<float> rows, int tokens, int width);
}
