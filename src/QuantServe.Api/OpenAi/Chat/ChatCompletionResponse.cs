using System.Text.Json.Serialization;

namespace QuantServe.Api.OpenAi.Chat;

/// <summary>POST /v1/chat/completions response (object <c>chat.completion</c>) or stream chunk (<c>chat.completion.chunk</c>).</summary>
/// <param name="Id">Unique id (chatcmpl-…), shared by every chunk of a stream.</param>
/// <param name="Object"><c>chat.completion</c> or <c>chat.completion.chunk</c>.</param>
/// <param name="Created">Unix seconds.</param>
/// <param name="Model">Model id.</param>
/// <param name="Choices">One per n.</param>
/// <param name="Usage">Token accounting (on chunks only in the final include_usage chunk).</param>
/// <param name="SystemFingerprint">Identifies the model build.</param>
public sealed record ChatCompletionResponse(
    string Id,
    string Object,
    long Created,
    string Model,
    IReadOnlyList<ChatChoice> Choices,
    Usage? Usage,
    string? SystemFingerprint);

/// <summary>One chat choice: <see cref="Message"/> in a full response, <see cref="Delta"/> in a chunk.</summary>
/// <param name="Index">Choice index.</param>
/// <param name="Message">The assistant message (full responses).</param>
/// <param name="Delta">The new part of the message (stream chunks).</param>
/// <param name="Logprobs">Per-token log-probabilities when requested.</param>
/// <param name="FinishReason"><c>stop</c> or <c>length</c>; null until the last chunk.</param>
public sealed record ChatChoice(
    int Index,
    ChatResponseMessage? Message,
    ChatResponseMessage? Delta,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] ChatLogprobs? Logprobs,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? FinishReason);

/// <summary>An assistant message or a delta of one.</summary>
/// <param name="Role"><c>assistant</c> (only in the first delta of a stream).</param>
/// <param name="Content">Text.</param>
public sealed record ChatResponseMessage(string? Role, string? Content);

/// <summary>Chat logprobs: one entry per output token.</summary>
/// <param name="Content">The entries.</param>
public sealed record ChatLogprobs(IReadOnlyList<ChatTokenLogprob> Content);

/// <summary>A token with its log-probability and alternatives.</summary>
/// <param name="Token">Token text.</param>
/// <param name="Logprob">log p.</param>
/// <param name="Bytes">UTF-8 bytes of the token.</param>
/// <param name="TopLogprobs">Most likely alternatives at this position.</param>
public sealed record ChatTokenLogprob(string Token, float Logprob, IReadOnlyList<int> Bytes, IReadOnlyList<ChatTopLogprob> TopLogprobs);

/// <summary>An alternative token.</summary>
/// <param name="Token">Token text.</param>
/// <param name="Logprob">log p.</param>
/// <param name="Bytes">UTF-8 bytes of the token.</param>
public sealed record ChatTopLogprob(string Token, float Logprob, IReadOnlyList<int> Bytes);
