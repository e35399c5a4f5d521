using System.Security.Claims;

namespace QuantServe.Api.Security;

/// <summary>
/// Checks <c>Authorization: Bearer &lt;key&gt;</c> against <see cref="ApiKeyStore"/> and the scope the route needs
/// (<see cref="RequiredScope"/>): 401 without a usable key, 403 with a key lacking the scope. A recognised caller is
/// stored as the request's <see cref="ApiCaller"/> feature and user (by key name) for the rate limiter. Nothing here
/// logs or echoes the presented key.
/// </summary>
public sealed class ApiKeyMiddleware(RequestDelegate next, ApiKeyStore keys)
{
    /// <summary>The scope a path needs, or null for the routes that stay open (health probes, /metrics, Swagger).
    /// Unknown paths need admin, so a route added later is closed until someone opens it.</summary>
    public static string? RequiredScope(PathString path)
    {
        if (path.StartsWithSegments("/v1")) return ApiScopes.Inference;
        if (path.StartsWithSegments("/health") || path.StartsWithSegments("/metrics") || path.StartsWithSegments("/swagger")) return null;
        return ApiScopes.Admin;
    }

    /// <summary>Authenticates and authorises the request.</summary>
    public async Task InvokeAsync(HttpContext context)
    {
        string? scope = RequiredScope(context.Request.Path);
        string? header = context.Request.Headers.Authorization;
        if (!keys.Enabled || (scope is null && string.IsNullOrEmpty(header)))
        {
            await next(context);
            return;
        }
        if (string.IsNullOrEmpty(header))
        {
            await Unauthorized(context, "Missing API key", "You didn't provide an API key. Send it in the Authorization header as 'Bearer <key>'.", "missing_api_key");
            return;
        }
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) || header.AsSpan(7).Trim().IsEmpty)
        {
            await Unauthorized(context, "Malformed Authorization header", "The Authorization header must read 'Bearer <key>'.", "invalid_authorization_header");
            return;
        }
        var caller = keys.Find(header[7..].Trim());
        if (caller is null)
        {
            await Unauthorized(context, "Invalid API key", "Incorrect API key provided.", "invalid_api_key");
            return;
        }
        context.Features.Set(caller);
        context.User = new ClaimsPrincipal(new ClaimsIdentity(
            caller.Scopes.Select(s => new Claim("scope", s)).Prepend(new Claim(ClaimTypes.Name, caller.Name)), "ApiKey"));
        if (scope is not null && !caller.Has(scope))
        {
            await AccessErrors.WriteAsync(context, StatusCodes.Status403Forbidden, "Insufficient scope",
                $"The API key '{caller.Name}' lacks the '{scope}' scope that {context.Request.Path.Value} requires.",
                "invalid_request_error", "insufficient_scope", wwwAuthenticate: $"Bearer error=\"insufficient_scope\", scope=\"{scope}\"");
            return;
        }
        await next(context);
    }

    private static Task Unauthorized(HttpContext context, string title, string message, string code)
        => AccessErrors.WriteAsync(context, StatusCodes.Status401Unauthorized, title, message, "invalid_request_error", code,
            wwwAuthenticate: "Bearer");
}
