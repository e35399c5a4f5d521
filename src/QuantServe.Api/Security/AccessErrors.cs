using QuantServe.Api.OpenAi;

namespace QuantServe.Api.Security;

/// <summary>Refusals written in the shape the route's clients expect: OpenAI's <c>{"error":{…}}</c> under /v1,
/// ProblemDetails (RFC 9457) everywhere else.</summary>
public static class AccessErrors
{
    /// <summary>Whether <paramref name="context"/> is an OpenAI-compatible route.</summary>
    public static bool IsOpenAi(HttpContext context) => context.Request.Path.StartsWithSegments("/v1");

    /// <summary>Writes the refusal unless the response has begun. <paramref name="code"/> is OpenAI's machine-readable
    /// code and <paramref name="title"/> the ProblemDetails title; <paramref name="wwwAuthenticate"/> and
    /// <paramref name="retryAfterSeconds"/> become headers.</summary>
    public static async Task WriteAsync(HttpContext context, int status, string title, string message, string type, string? code,
        int? retryAfterSeconds = null, string? wwwAuthenticate = null)
    {
        var response = context.Response;
        if (response.HasStarted) return;
        response.Clear();
        response.StatusCode = status;
        if (retryAfterSeconds is { } s) response.Headers.RetryAfter = s.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (wwwAuthenticate is not null) response.Headers.WWWAuthenticate = wwwAuthenticate;
        // The token may already be cancelled (a timed-out request); the refusal is still owed to a connected client.
        if (IsOpenAi(context))
            await response.WriteAsJsonAsync(new OpenAiErrorResponse(new OpenAiError(message, type, null, code)), OpenAiJson.Options, CancellationToken.None);
        else
            await Results.Problem(detail: message, statusCode: status, title: title).ExecuteAsync(context);
    }
}
