using System.Security.Claims;

namespace QuantServe.Api.Security;

/// <summary>Why a request is refused; set by <see cref="ApiKeyMiddleware"/> and answered by
/// <see cref="ApiKeyEnforcementMiddleware"/> after the rate limiter has counted the attempt.</summary>
/// <param name="Status">401 or 403.</param>
/// <param name="Title">ProblemDetails title.</param>
/// <param name="Message">What is wrong (never repeating the presented key).</param>
/// <param name="Code">OpenAI error code.</param>
/// <param name="WwwAuthenticate">The WWW-Authenticate challenge.</param>
public sealed record AccessRefusal(int Status, string Title, string Message, string Code, string WwwAuthenticate);

/// <summary>
/// Checks <c>Authorization: Bearer &lt;key&gt;</c> against <see cref="ApiKeyStore"/> and the scope the route needs
/// (<see cref="RequiredScope"/>). A recognised caller becomes the request's <see cref="ApiCaller"/> feature and user (by
/// key name), so the rate limiter partitions by key; a request to be refused (no usable key: 401; a key without the
/// scope: 403) carries an <see cref="AccessRefusal"/> through the rate limiter, partitioned by client address, so key
/// guessing is throttled too. Open routes are never refused. Nothing here logs or echoes the presented key.
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

    /// <summary>Identifies the caller and decides whether the request is to be refused.</summary>
    public Task InvokeAsync(HttpContext context)
    {
        if (!keys.Enabled) return next(context);
        string? scope = RequiredScope(context.Request.Path);
        var refusal = Decide(context, scope);
        if (refusal is not null && scope is not null) context.Features.Set(refusal);
        return next(context);
    }

    private AccessRefusal? Decide(HttpContext context, string? scope)
    {
        string? header = context.Request.Headers.Authorization;
        if (string.IsNullOrEmpty(header))
            return Unauthorized("Missing API key", "You didn't provide an API key. Send it in the Authorization header as 'Bearer <key>'.", "missing_api_key");
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) || header.AsSpan(7).Trim().IsEmpty)
            return Unauthorized("Malformed Authorization header", "The Authorization header must read 'Bearer <key>'.", "invalid_authorization_header");
        var caller = keys.Find(header[7..].Trim());
        if (caller is null) return Unauthorized("Invalid API key", "Incorrect API key provided.", "invalid_api_key");
        context.Features.Set(caller);
        context.User = new ClaimsPrincipal(new ClaimsIdentity(
            caller.Scopes.Select(s => new Claim("scope", s)).Prepend(new Claim(ClaimTypes.Name, caller.Name)), "ApiKey"));
        if (scope is not null && !caller.Has(scope))
            return new AccessRefusal(StatusCodes.Status403Forbidden, "Insufficient scope",
                $"The API key '{caller.Name}' lacks the '{scope}' scope that {context.Request.Path.Value} requires.", "insufficient_scope",
                $"Bearer error=\"insufficient_scope\", scope=\"{scope}\"");
        return null;
    }

    private static AccessRefusal Unauthorized(string title, string message, string code)
        => new(StatusCodes.Status401Unauthorized, title, message, code, "Bearer");
}

/// <summary>Answers requests that <see cref="ApiKeyMiddleware"/> marked for refusal (401/403 in the route's shape).</summary>
public sealed class ApiKeyEnforcementMiddleware(RequestDelegate next)
{
    /// <summary>Refuses or passes the request on.</summary>
    public Task InvokeAsync(HttpContext context)
        => context.Features.Get<AccessRefusal>() is { } r
            ? AccessErrors.WriteAsync(context, r.Status, r.Title, r.Message, "invalid_request_error", r.Code, wwwAuthenticate: r.WwwAuthenticate)
            : next(context);
}
