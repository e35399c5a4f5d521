namespace QuantServe.Api.Logging;

/// <summary>What a request used, filled in by the serving code and written by <see cref="RequestLoggingMiddleware"/>.</summary>
public sealed class RequestUsageFeature
{
    /// <summary>Model that served the request.</summary>
    public string? Model { get; set; }

    /// <summary>Prompt tokens.</summary>
    public int PromptTokens { get; set; }

    /// <summary>Generated tokens.</summary>
    public int CompletionTokens { get; set; }

    /// <summary>The request's feature, created on first use.</summary>
    public static RequestUsageFeature Of(HttpContext context)
    {
        var f = context.Features.Get<RequestUsageFeature>();
        if (f is null)
        {
            f = new RequestUsageFeature();
            context.Features.Set(f);
        }
        return f;
    }
}
