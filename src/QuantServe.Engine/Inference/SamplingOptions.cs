namespace QuantServe.Engine.Inference;

/// <summary>
/// How the next token is chosen from the logits. Defaults leave the model's distribution unchanged (temperature 1, no
/// truncation, no penalties). Temperature 0 means greedy decoding.
/// </summary>
public sealed record SamplingOptions
{
    /// <summary>Greedy decoding: argmax, lowest id on ties.</summary>
    public static SamplingOptions Greedy { get; } = new() { Temperature = 0 };

    /// <summary>Logits are divided by this before sampling; 0 selects the argmax.</summary>
    public float Temperature { get; init; } = 1f;

    /// <summary>Keep only the <c>TopK</c> most likely tokens (0 = all).</summary>
    public int TopK { get; init; }

    /// <summary>Nucleus: keep the smallest set of most likely tokens whose probabilities sum to at least <c>TopP</c> (1 = all).</summary>
    public float TopP { get; init; } = 1f;

    /// <summary>Keep tokens whose probability is at least <c>MinP</c> × the top probability (0 = all).</summary>
    public float MinP { get; init; }

    /// <summary>Repetition penalty (HF/llama.cpp): a recent token's logit is divided by it when positive and multiplied when negative (1 = off).</summary>
    public float RepetitionPenalty { get; init; } = 1f;

    /// <summary>How many of the most recent tokens (prompt included) the penalties look at (0 = all of them).</summary>
    public int PenaltyWindow { get; init; } = 64;

    /// <summary>OpenAI presence penalty: subtracted once from the logit of every token present in the window.</summary>
    public float PresencePenalty { get; init; }

    /// <summary>OpenAI frequency penalty: subtracted from a token's logit once per occurrence in the window.</summary>
    public float FrequencyPenalty { get; init; }

    /// <summary>Added to the logits of the given token ids before anything else (OpenAI <c>logit_bias</c>).</summary>
    public IReadOnlyDictionary<int, float>? LogitBias { get; init; }

    /// <summary>Seed of the random generator; the same seed, options and logits give the same tokens. Null: a random seed.</summary>
    public ulong? Seed { get; init; }

    /// <summary>Whether to report the chosen token's log-probability.</summary>
    public bool Logprobs { get; init; }

    /// <summary>How many most likely alternatives to report with each token (0–20 is sensible); implies <see cref="Logprobs"/>.</summary>
    public int TopLogprobs { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public void Validate(int vocabSize)
    {
        if (!(Temperature >= 0) || float.IsInfinity(Temperature)) throw new ArgumentException($"temperature must be a finite number ≥ 0, got {Temperature}");
        if (TopK < 0) throw new ArgumentException($"top_k must be ≥ 0, got {TopK}");
        if (!(TopP > 0 && TopP <= 1)) throw new ArgumentException($"top_p must be in (0, 1], got {TopP}");
        if (!(MinP >= 0 && MinP <= 1)) throw new ArgumentException($"min_p must be in [0, 1], got {MinP}");
        if (!(RepetitionPenalty > 0) || float.IsInfinity(RepetitionPenalty)) throw new ArgumentException($"repetition_penalty must be a finite number > 0, got {RepetitionPenalty}");
        if (PenaltyWindow < 0) throw new ArgumentException($"penalty window must be ≥ 0, got {PenaltyWindow}");
        if (!float.IsFinite(PresencePenalty)) throw new ArgumentException($"presence_penalty must be finite, got {PresencePenalty}");
        if (!float.IsFinite(FrequencyPenalty)) throw new ArgumentException($"frequency_penalty must be finite, got {FrequencyPenalty}");
        if (TopLogprobs < 0 || TopLogprobs > vocabSize) throw new ArgumentException($"top_logprobs must be in [0, {vocabSize}], got {TopLogprobs}");
        if (LogitBias != null)
            foreach (var (id, bias) in LogitBias)
            {
                if ((uint)id >= (uint)vocabSize) throw new ArgumentException($"logit_bias token id {id} is outside the vocabulary [0, {vocabSize})");
                if (float.IsNaN(bias)) throw new ArgumentException($"logit_bias for token {id} is NaN");
            }
    }
}
