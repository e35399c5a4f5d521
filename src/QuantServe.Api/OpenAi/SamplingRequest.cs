namespace QuantServe.Api.OpenAi;

/// <summary>Fields shared by completion and chat requests: the model and how tokens are chosen.</summary>
public abstract class SamplingRequest
{
    /// <summary>Id of the model to use (see GET /v1/models).</summary>
    /// <example>stories260K</example>
    public string? Model { get; init; }

    /// <summary>Sampling temperature in [0, 2]; 0 = greedy. Default 1.</summary>
    /// <example>0.8</example>
    public float? Temperature { get; init; }

    /// <summary>Nucleus sampling: keep the smallest set of tokens whose probability reaches top_p. Default 1.</summary>
    /// <example>0.95</example>
    public float? TopP { get; init; }

    /// <summary>Keep only the k most likely tokens (0 = off). QuantServe extension.</summary>
    /// <example>40</example>
    public int? TopK { get; init; }

    /// <summary>Drop tokens less likely than min_p × the most likely one. QuantServe extension.</summary>
    public float? MinP { get; init; }

    /// <summary>Divides positive / multiplies negative logits of tokens already present (1 = off). QuantServe extension.</summary>
    public float? RepetitionPenalty { get; init; }

    /// <summary>Choices to generate per prompt. Default 1.</summary>
    /// <example>1</example>
    public int? N { get; init; }

    /// <summary>Stream partial results as server-sent events, ending with <c>data: [DONE]</c>.</summary>
    public bool? Stream { get; init; }

    /// <summary>Streaming options.</summary>
    public StreamOptions? StreamOptions { get; init; }

    /// <summary>Up to 4 sequences where generation stops; the stop sequence is not returned.</summary>
    public StopInput? Stop { get; init; }

    /// <summary>Penalty in [-2, 2] subtracted once from the logit of every token already generated.</summary>
    public float? PresencePenalty { get; init; }

    /// <summary>Penalty in [-2, 2] times the count of each token already generated, subtracted from its logit.</summary>
    public float? FrequencyPenalty { get; init; }

    /// <summary>Token id (as a string key) → bias in [-100, 100] added to its logit.</summary>
    public Dictionary<string, float>? LogitBias { get; init; }

    /// <summary>Seed for reproducible sampling.</summary>
    /// <example>42</example>
    public long? Seed { get; init; }

    /// <summary>End-user identifier (accepted, not used).</summary>
    public string? User { get; init; }

    /// <summary>Checks the shared fields; <paramref name="maxTokens"/> is the request's own token limit.</summary>
    protected OpenAiError? ValidateSampling(int? maxTokens, string maxTokensParam)
    {
        if (string.IsNullOrWhiteSpace(Model)) return OpenAiError.Invalid("you must provide a model parameter", "model");
        if (Temperature is { } t && !(t >= 0 && t <= 2)) return OpenAiError.Invalid($"{t} is not valid for temperature: it must be between 0 and 2", "temperature");
        if (TopP is { } p && !(p > 0 && p <= 1)) return OpenAiError.Invalid($"{p} is not valid for top_p: it must be in (0, 1]", "top_p");
        if (TopK is { } k && k < 0) return OpenAiError.Invalid($"{k} is not valid for top_k: it must be >= 0", "top_k");
        if (MinP is { } m && !(m >= 0 && m <= 1)) return OpenAiError.Invalid($"{m} is not valid for min_p: it must be between 0 and 1", "min_p");
        if (RepetitionPenalty is { } r && !(r > 0 && r <= 10)) return OpenAiError.Invalid($"{r} is not valid for repetition_penalty: it must be in (0, 10]", "repetition_penalty");
        if (N is { } n && (n < 1 || n > 128)) return OpenAiError.Invalid($"{n} is not valid for n: it must be between 1 and 128", "n");
        if (maxTokens is { } mt && mt < 0) return OpenAiError.Invalid($"{mt} is not valid for {maxTokensParam}: it must be >= 0", maxTokensParam);
        if (Stop is { } s)
        {
            if (s.Sequences.Count > 4) return OpenAiError.Invalid($"stop may hold at most 4 sequences, got {s.Sequences.Count}", "stop");
            if (s.Sequences.Any(string.IsNullOrEmpty)) return OpenAiError.Invalid("stop sequences must not be empty", "stop");
        }
        if (PresencePenalty is { } pp && !(pp >= -2 && pp <= 2)) return OpenAiError.Invalid($"{pp} is not valid for presence_penalty: it must be between -2 and 2", "presence_penalty");
        if (FrequencyPenalty is { } fp && !(fp >= -2 && fp <= 2)) return OpenAiError.Invalid($"{fp} is not valid for frequency_penalty: it must be between -2 and 2", "frequency_penalty");
        if (LogitBias is not null)
            foreach (var (key, bias) in LogitBias)
            {
                if (!int.TryParse(key, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out _))
                    return OpenAiError.Invalid($"logit_bias key '{key}' is not a token id", "logit_bias");
                if (!(bias >= -100 && bias <= 100)) return OpenAiError.Invalid($"logit_bias for token {key} is {bias}: it must be between -100 and 100", "logit_bias");
            }
        if (StreamOptions is not null && Stream != true) return OpenAiError.Invalid("stream_options is only allowed when stream is true", "stream_options");
        return null;
    }
}

/// <summary>Options for streamed responses.</summary>
public sealed class StreamOptions
{
    /// <summary>Send a last chunk with empty choices carrying the request's usage.</summary>
    public bool? IncludeUsage { get; init; }
}

/// <summary>Token accounting of a response.</summary>
/// <param name="PromptTokens">Tokens in the prompt(s).</param>
/// <param name="CompletionTokens">Tokens generated.</param>
/// <param name="TotalTokens">Their sum.</param>
public sealed record Usage(int PromptTokens, int CompletionTokens, int TotalTokens);
