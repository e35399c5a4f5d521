using System.Text.Json;

namespace QuantServe.Api.OpenAi;

/// <summary>
/// Guarantees OpenAI's error envelope for every failure under /v1: thrown <see cref="OpenAiException"/>s, bad request
/// bodies (malformed JSON, wrong types), unknown routes and methods, and unexpected exceptions (500, logged).
/// </summary>
public sealed class OpenAiErrorMiddleware(RequestDelegate next, ILogger<OpenAiErrorMiddleware> log)
{
    /// <summary>Runs the /v1 pipeline, translating failures.</summary>
    public async Task InvokeAsync(HttpContext context)
    {
        try
        {
            await next(context);
        }
        catch (OpenAiException e)
        {
            await WriteAsync(context, e.Status, e.Error, e.RetryAfterSeconds);
            return;
        }
        catch (BadHttpRequestException e)
        {
            string message = e.InnerException is JsonException je
                ? $"We could not parse the JSON body of your request: {je.Message}"
                : e.Message;
            await WriteAsync(context, e.StatusCode, OpenAiError.Invalid(message, ParamOf(e.InnerException as JsonException)), null);
            return;
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client went away; there is nobody to answer.
            return;
        }
        catch (QuantServe.Engine.Models.ModelLoadException e)
        {
            // The request was fine; the model's files are not (or use a format this build cannot run).
            log.LogError("Model could not be loaded for {Method} {Path}: {Problem}", context.Request.Method, context.Request.Path.Value, e.Message);
            await WriteAsync(context, 500, new OpenAiError("The model could not be loaded: " + e.Message, "server_error", "model", "model_load_failed"), null);
            return;
        }
        catch (Exception e)
        {
            log.LogError(e, "Unhandled error serving {Method} {Path}", context.Request.Method, context.Request.Path.Value);
            await WriteAsync(context, 500, new OpenAiError("The server had an error while processing your request: " + e.Message, "server_error", null, "internal_error"), null);
            return;
        }

        if (context.Response.HasStarted || context.Response.StatusCode < 400 || context.Response.ContentLength > 0
            || context.Response.ContentType is not null) return;
        var error = context.Response.StatusCode switch
        {
            404 => new OpenAiError($"Invalid URL ({context.Request.Method} {context.Request.Path.Value})", "invalid_request_error", null, "unknown_url"),
            405 => new OpenAiError($"Method {context.Request.Method} is not allowed for {context.Request.Path.Value}", "invalid_request_error", null, "method_not_allowed"),
            415 => OpenAiError.Invalid("The request body must be JSON (Content-Type: application/json)", null, "unsupported_media_type"),
            >= 500 => new OpenAiError("The server had an error while processing your request", "server_error"),
            _ => OpenAiError.Invalid($"The request failed with status {context.Response.StatusCode}"),
        };
        await WriteAsync(context, context.Response.StatusCode, error, null);
    }

    private static string? ParamOf(JsonException? e)
    {
        // JsonException.Path looks like "$.max_tokens" or "$.messages[0].role".
        if (e?.Path is not { Length: > 2 } path || !path.StartsWith("$.", StringComparison.Ordinal)) return null;
        return path[2..];
    }

    /// <summary>Writes the envelope unless the response has already begun (a stream is then just ended).</summary>
    public static async Task WriteAsync(HttpContext context, int status, OpenAiError error, int? retryAfter)
    {
        if (context.Response.HasStarted) return;
        context.Response.Clear();
        context.Response.StatusCode = status;
        if (retryAfter is { } s) context.Response.Headers.RetryAfter = s.ToString(System.Globalization.CultureInfo.InvariantCulture);
        await context.Response.WriteAsJsonAsync(new OpenAiErrorResponse(error), OpenAiJson.Options, context.RequestAborted);
    }
}
