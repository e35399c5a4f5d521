using System.Text.Json.Serialization;

namespace QuantServe.Api.OpenAi;

/// <summary>OpenAI's error envelope: <c>{"error":{"message","type","param","code"}}</c>.</summary>
/// <param name="Error">The error.</param>
public sealed record OpenAiErrorResponse(OpenAiError Error);

/// <summary>One error, as OpenAI reports it.</summary>
/// <param name="Message">Human-readable explanation.</param>
/// <param name="Type"><c>invalid_request_error</c>, <c>not_found_error</c>, <c>rate_limit_error</c>, <c>server_error</c>.</param>
/// <param name="Param">The request field at fault, or null.</param>
/// <param name="Code">A machine-readable code (<c>model_not_found</c>, <c>context_length_exceeded</c>, …), or null.</param>
public sealed record OpenAiError(
    string Message,
    string Type,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Param = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Code = null)
{
    /// <summary>A 400 about <paramref name="param"/>.</summary>
    public static OpenAiError Invalid(string message, string? param = null, string? code = null)
        => new(message, "invalid_request_error", param, code);
}

/// <summary>Thrown by serving code to answer with an OpenAI error; the /v1 error middleware turns it into the envelope.</summary>
public sealed class OpenAiException(int status, OpenAiError error, int? retryAfterSeconds = null) : Exception(error.Message)
{
    /// <summary>HTTP status.</summary>
    public int Status { get; } = status;

    /// <summary>The error body.</summary>
    public OpenAiError Error { get; } = error;

    /// <summary>Seconds for the Retry-After header (429/503), or null.</summary>
    public int? RetryAfterSeconds { get; } = retryAfterSeconds;

    /// <summary>400 invalid_request_error.</summary>
    public static OpenAiException BadRequest(string message, string? param = null, string? code = null)
        => new(400, OpenAiError.Invalid(message, param, code));

    /// <summary>404 for a model that is not served.</summary>
    public static OpenAiException ModelNotFound(string model)
        => new(404, new OpenAiError($"The model '{model}' does not exist or you do not have access to it.", "invalid_request_error", "model", "model_not_found"));

    /// <summary>503 with Retry-After: the server lacks a resource (device memory) for the request right now.</summary>
    public static OpenAiException Unavailable(string message, int retryAfterSeconds)
        => new(503, new OpenAiError(message, "server_error", null, "insufficient_device_memory"), retryAfterSeconds);

    /// <summary>429 with Retry-After.</summary>
    public static OpenAiException Overloaded(string message, int retryAfterSeconds)
        => new(429, new OpenAiError(message, "rate_limit_error", null, "server_overloaded"), retryAfterSeconds);
}
