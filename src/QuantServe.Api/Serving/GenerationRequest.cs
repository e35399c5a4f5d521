using QuantServe.Engine.Inference;

namespace QuantServe.Api.Serving;

/// <summary>One sequence to generate, as the scheduler sees it (protocol-independent).</summary>
public sealed record GenerationRequest
{
    /// <summary>Prompt token ids (BOS included when the model wants it).</summary>
    public required int[] Prompt { get; init; }

    /// <summary>Tokens to generate at most; null = until the sequence's context is full.</summary>
    public int? MaxTokens { get; init; }

    /// <summary>Sampling settings (seed, penalties, logprobs, …) handed to the engine's sampler.</summary>
    public required SamplingOptions Sampling { get; init; }

    /// <summary>Stop strings (never emitted).</summary>
    public IReadOnlyList<string> StopSequences { get; init; } = [];

    /// <summary>Score the prompt: report log p(prompt[i] | prompt[..i]) for i ≥ 1 (echo with logprobs).</summary>
    public bool ScorePrompt { get; init; }

    /// <summary>Alternatives listed per prompt position when <see cref="ScorePrompt"/>.</summary>
    public int PromptTopLogprobs { get; init; }

    /// <summary>Constrain the output to one JSON object (response_format json_object).</summary>
    public bool JsonObject { get; init; }

    /// <summary>Cancelled when the client goes away; the sequence then leaves the batch at the next step.</summary>
    public CancellationToken Cancellation { get; init; }
}
