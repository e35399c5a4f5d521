namespace QuantServe.Api.OpenAi.Completions;

/// <summary>POST /v1/completions body.</summary>
public sealed class CompletionRequest : SamplingRequest, IValidatableRequest
{
    /// <summary>A string, array of strings, array of token ids, or array of token-id arrays.</summary>
    /// <example>Once upon a time</example>
    public PromptInput? Prompt { get; init; }

    /// <summary>Not supported (no fill-in-the-middle); a request that sets it is rejected.</summary>
    public string? Suffix { get; init; }

    /// <summary>Maximum tokens to generate per choice. Default 16. 0 is allowed with echo (scores the prompt only).</summary>
    /// <example>64</example>
    public int? MaxTokens { get; init; }

    /// <summary>Return log-probabilities of the chosen tokens and of this many most likely alternatives (0-20).</summary>
    public int? Logprobs { get; init; }

    /// <summary>Return the prompt before the completion (with logprobs: the prompt tokens' logprobs too, the first null).</summary>
    public bool? Echo { get; init; }

    /// <summary>Generate best_of candidates per prompt and return the n with the highest mean token log-probability.</summary>
    public int? BestOf { get; init; }

    /// <inheritdoc />
    public OpenAiError? Validate()
    {
        if (Prompt is null || Prompt.Count == 0) return OpenAiError.Invalid("you must provide a prompt", "prompt");
        if (Prompt.Tokens?.Any(t => t.Length == 0) == true) return OpenAiError.Invalid("token-id prompts must not be empty", "prompt");
        if (Suffix is not null) return OpenAiError.Invalid("suffix is not supported: QuantServe's models are not trained for fill-in-the-middle", "suffix");
        if (ValidateSampling(MaxTokens, "max_tokens") is { } e) return e;
        if (MaxTokens == 0 && Echo != true) return OpenAiError.Invalid("max_tokens may be 0 only with echo", "max_tokens");
        if (Logprobs is { } lp && (lp < 0 || lp > 20)) return OpenAiError.Invalid($"{lp} is not valid for logprobs: it must be between 0 and 20", "logprobs");
        if (BestOf is { } bo)
        {
            if (bo < 1 || bo > 20) return OpenAiError.Invalid($"{bo} is not valid for best_of: it must be between 1 and 20", "best_of");
            if (bo < (N ?? 1)) return OpenAiError.Invalid("best_of must be greater than or equal to n", "best_of");
            if (bo > 1 && Stream == true) return OpenAiError.Invalid("best_of cannot be used with stream", "best_of");
        }
        if (Prompt.Count * Math.Max(N ?? 1, BestOf ?? 1) > 128)
            return OpenAiError.Invalid("too many sequences: prompts × max(n, best_of) must not exceed 128", "n");
        return null;
    }
}
