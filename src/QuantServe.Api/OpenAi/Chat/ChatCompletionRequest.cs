namespace QuantServe.Api.OpenAi.Chat;

/// <summary>POST /v1/chat/completions body.</summary>
public sealed class ChatCompletionRequest : SamplingRequest, IValidatableRequest
{
    /// <summary>Roles the chat template is given.</summary>
    public static readonly string[] Roles = ["system", "developer", "user", "assistant"];

    /// <summary>The conversation so far.</summary>
    public IReadOnlyList<ChatMessage>? Messages { get; init; }

    /// <summary>Maximum tokens to generate (legacy name).</summary>
    /// <example>64</example>
    public int? MaxTokens { get; init; }

    /// <summary>Maximum tokens to generate; takes precedence over max_tokens.</summary>
    public int? MaxCompletionTokens { get; init; }

    /// <summary>Return log-probabilities of the output tokens.</summary>
    public bool? Logprobs { get; init; }

    /// <summary>Alternatives (0-20) listed at each position; needs logprobs.</summary>
    public int? TopLogprobs { get; init; }

    /// <summary><c>{"type":"text"}</c> or <c>{"type":"json_object"}</c> (output constrained to a JSON object).</summary>
    public ResponseFormat? ResponseFormat { get; init; }

    /// <summary>Effective token limit, or null for "until the context is full".</summary>
    public int? TokenLimit => MaxCompletionTokens ?? MaxTokens;

    /// <inheritdoc />
    public OpenAiError? Validate()
    {
        if (Messages is null || Messages.Count == 0) return OpenAiError.Invalid("messages must be a non-empty array", "messages");
        for (int i = 0; i < Messages.Count; i++)
        {
            var m = Messages[i];
            if (m is null) return OpenAiError.Invalid($"messages[{i}] must be an object", $"messages[{i}]");
            if (m.Role is null || !Roles.Contains(m.Role))
                return OpenAiError.Invalid($"messages[{i}].role must be one of {string.Join(", ", Roles)}; got '{m.Role}'", $"messages[{i}].role");
            if (m.Content is null) return OpenAiError.Invalid($"messages[{i}].content is required", $"messages[{i}].content");
        }
        string limitParam = MaxCompletionTokens is not null ? "max_completion_tokens" : "max_tokens";
        if (ValidateSampling(TokenLimit, limitParam) is { } e) return e;
        if (TokenLimit == 0) return OpenAiError.Invalid($"{limitParam} must be at least 1", limitParam);
        if (TopLogprobs is { } tl)
        {
            if (tl < 0 || tl > 20) return OpenAiError.Invalid($"{tl} is not valid for top_logprobs: it must be between 0 and 20", "top_logprobs");
            if (Logprobs != true) return OpenAiError.Invalid("top_logprobs requires logprobs to be true", "top_logprobs");
        }
        if (ResponseFormat is { } rf && rf.Type is not ("text" or "json_object"))
            return OpenAiError.Invalid($"response_format type '{rf.Type}' is not supported: use 'text' or 'json_object'", "response_format");
        return null;
    }
}

/// <summary>Requested output format.</summary>
public sealed class ResponseFormat
{
    /// <summary><c>text</c> or <c>json_object</c>.</summary>
    /// <example>json_object</example>
    public string? Type { get; init; }
}
