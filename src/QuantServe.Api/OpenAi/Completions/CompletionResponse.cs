using System.Text.Json.Serialization;

namespace QuantServe.Api.OpenAi.Completions;

/// <summary>POST /v1/completions response (and, with object "text_completion", each streamed chunk).</summary>
/// <param name="Id">Unique id (cmpl-…); every chunk of a stream shares it.</param>
/// <param name="Object">Always <c>text_completion</c>.</param>
/// <param name="Created">Unix seconds.</param>
/// <param name="Model">Model id that served the request.</param>
/// <param name="Choices">One per prompt × n, ordered by index.</param>
/// <param name="Usage">Token accounting (absent on stream chunks except the include_usage one).</param>
/// <param name="SystemFingerprint">Identifies the model build (format and precision).</param>
public sealed record CompletionResponse(
    string Id,
    string Object,
    long Created,
    string Model,
    IReadOnlyList<CompletionChoice> Choices,
    Usage? Usage,
    string? SystemFingerprint);

/// <summary>One completion.</summary>
/// <param name="Text">Generated text (with echo: prompt + generated text).</param>
/// <param name="Index">Position in the choices list (prompt index × n + choice).</param>
/// <param name="Logprobs">Log-probabilities when requested; null otherwise.</param>
/// <param name="FinishReason"><c>stop</c> (end of text or a stop sequence) or <c>length</c> (max_tokens or context); null on intermediate chunks.</param>
public sealed record CompletionChoice(
    string Text,
    int Index,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] CompletionLogprobs? Logprobs,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? FinishReason);

/// <summary>Legacy completions logprobs: parallel lists, one entry per returned token.</summary>
/// <param name="Tokens">Token texts.</param>
/// <param name="TokenLogprobs">log p(token | preceding tokens); null for the first echoed prompt token (it has no context).</param>
/// <param name="TopLogprobs">The most likely alternatives at each position (token text → logprob); null where TokenLogprobs is null.</param>
/// <param name="TextOffset">Character offset of each token within the returned text.</param>
public sealed record CompletionLogprobs(
    IReadOnlyList<string> Tokens,
    IReadOnlyList<float?> TokenLogprobs,
    IReadOnlyList<Dictionary<string, float>?> TopLogprobs,
    IReadOnlyList<int> TextOffset);
