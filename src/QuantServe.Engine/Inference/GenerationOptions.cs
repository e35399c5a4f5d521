namespace QuantServe.Engine.Inference;

/// <summary>Why generation ended.</summary>
public enum FinishReason
{
    /// <summary>A stop token was sampled (it is not part of the text).</summary>
    Stop,
    /// <summary>The token budget or the context window ran out.</summary>
    Length,
}

/// <summary>What to generate and how.</summary>
public sealed record GenerationOptions
{
    /// <summary>Most tokens to generate.</summary>
    public int MaxTokens { get; init; } = 256;

    /// <summary>How each token is chosen.</summary>
    public SamplingOptions Sampling { get; init; } = new();

    /// <summary>Stop token ids in addition to the model's own (<c>LoadedModel.Generation.StopTokenIds</c> and EOS).</summary>
    public IReadOnlyList<int> StopTokenIds { get; init; } = [];

    /// <summary>Keep generating past the model's EOS and stop tokens (only <see cref="StopTokenIds"/> stop).</summary>
    public bool IgnoreEos { get; init; }

    /// <summary>For text prompts: prepend BOS (null = the tokenizer's default).</summary>
    public bool? AddBos { get; init; }

    /// <summary>Creates the per-generation structured-output constraint (e.g. <see cref="Constraints.JsonConstraint.Create"/>
    /// for <c>response_format: json_object</c>); null generates freely. With a constraint, the token budget is passed to it
    /// so it can close its output before <see cref="MaxTokens"/>.</summary>
    public Func<Constraints.ConstraintContext, Constraints.ITokenConstraint>? Constraint { get; init; }

    /// <summary>For text prompts: turn special-token texts such as <c>&lt;|im_start|&gt;</c> into their ids.</summary>
    public bool ParseSpecialTokens { get; init; } = true;
}

/// <summary>One generated token.</summary>
/// <param name="Token">The token id.</param>
/// <param name="Text">The text this token completes (may be empty while a multi-byte character is unfinished, and is empty for a stop token).</param>
/// <param name="Logprob">Its log-probability when requested (see <see cref="Sampler"/> for which distribution).</param>
/// <param name="TopLogprobs">The most likely alternatives when requested.</param>
/// <param name="Finish">Set on the last token: why generation ended.</param>
public sealed record GeneratedToken(int Token, string Text, float? Logprob, IReadOnlyList<TokenLogprob>? TopLogprobs, FinishReason? Finish);

/// <summary>Log-likelihood of a token sequence under the model.</summary>
/// <param name="TokenLogprobs">Entry i is log p(token_i | tokens_0..i−1); entry 0 is NaN (the first token has no prefix).</param>
/// <param name="TopLogprobs">When requested, entry i holds the most likely alternatives at position i (entry 0 empty).</param>
/// <param name="Sum">Σ_{i≥1} TokenLogprobs[i].</param>
public sealed record LogLikelihoodResult(float[] TokenLogprobs, TokenLogprob[][]? TopLogprobs, double Sum)
{
    /// <summary>Number of scored tokens (all but the first).</summary>
    public int Scored => Math.Max(0, TokenLogprobs.Length - 1);
}
