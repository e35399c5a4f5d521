using System.Diagnostics;

namespace QuantServe.Api.Logging;

/// <summary>Writes one structured line per request: method, path, status, latency, model, token counts and the API key's
/// name (never the key). Bodies (and so prompt text) are never logged here.</summary>
public sealed class RequestLoggingMiddleware(RequestDelegate next, ILogger<RequestLoggingMiddleware> log)
{
    /// <summary>Runs the pipeline and logs its outcome.</summary>
    public async Task InvokeAsync(HttpContext context)
    {
        long start = Stopwatch.GetTimestamp();
        var usage = RequestUsageFeature.Of(context);
        bool failed = false;
        try
        {
            await next(context);
        }
        catch
        {
            // The server will answer 500 once the exception leaves the pipeline.
            failed = true;
            throw;
        }
        finally
        {
            double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            int status = failed && !context.Response.HasStarted ? 500
                : context.RequestAborted.IsCancellationRequested && !context.Response.HasStarted ? 499
                : context.Response.StatusCode;
            var level = status >= 500 ? LogLevel.Error : LogLevel.Information;
            log.Log(level,
                "HTTP {Method} {Path} {Status} in {ElapsedMs:0.0} ms model={Model} prompt_tokens={PromptTokens} completion_tokens={CompletionTokens} caller={Caller}",
                context.Request.Method, context.Request.Path.Value, status, ms, usage.Model ?? "-", usage.PromptTokens, usage.CompletionTokens,
                context.Features.Get<Security.ApiCaller>()?.Name ?? "-");
        }
    }
}
