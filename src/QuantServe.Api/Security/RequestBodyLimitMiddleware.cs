using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;

namespace QuantServe.Api.Security;

/// <summary>
/// Caps request bodies at <see cref="LimitsOptions.MaxRequestBodyBytes"/>: a declared Content-Length above it is refused
/// with 413 before anything is read, and the server's own limit is lowered to it so a chunked body fails the same way
/// while being read. Model uploads (multipart POST /quantize) keep their own, larger limit.
/// </summary>
public sealed class RequestBodyLimitMiddleware(RequestDelegate next, IOptions<LimitsOptions> limits)
{
    /// <summary>Applies the limit.</summary>
    public async Task InvokeAsync(HttpContext context)
    {
        long max = limits.Value.MaxRequestBodyBytes;
        if (max > 0 && !IsUpload(context.Request))
        {
            if (context.Request.ContentLength is { } declared && declared > max)
            {
                await AccessErrors.WriteAsync(context, StatusCodes.Status413PayloadTooLarge, "Request body too large",
                    $"The request body is {declared} bytes; this server accepts at most {max} bytes.", "invalid_request_error", "request_too_large");
                return;
            }
            if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size) size.MaxRequestBodySize = max;
        }
        await next(context);
    }

    private static bool IsUpload(HttpRequest request)
        => HttpMethods.IsPost(request.Method) && request.Path.Equals("/quantize", StringComparison.OrdinalIgnoreCase)
           && request.ContentType is { } type && type.StartsWith("multipart/", StringComparison.OrdinalIgnoreCase);
}
