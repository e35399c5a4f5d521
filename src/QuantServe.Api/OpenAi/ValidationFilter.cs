using Microsoft.Extensions.Options;
using QuantServe.Api.Security;

namespace QuantServe.Api.OpenAi;

/// <summary>Endpoint filter: rejects a request whose body fails <see cref="IValidatableRequest.Validate"/>, or asks for more tokens than
/// <see cref="LimitsOptions.MaxTokens"/>, with a 400 envelope.</summary>
public sealed class ValidationFilter<T> : IEndpointFilter where T : class, IValidatableRequest
{
    /// <inheritdoc />
    public ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var body = context.Arguments.OfType<T>().FirstOrDefault();
        if (body is null)
            throw OpenAiException.BadRequest("The request body is missing: send a JSON object");
        if (body.Validate() is { } error) throw new OpenAiException(400, error);
        var (requested, param) = body switch
        {
            Completions.CompletionRequest c => (c.MaxTokens, "max_tokens"),
            Chat.ChatCompletionRequest c => (c.TokenLimit, c.MaxCompletionTokens is null ? "max_tokens" : "max_completion_tokens"),
            _ => ((int?)null, ""),
        };
        int bound = context.HttpContext.RequestServices.GetRequiredService<IOptions<LimitsOptions>>().Value.MaxTokens;
        if (requested > bound && bound > 0)
            throw OpenAiException.BadRequest($"{requested} is not valid for {param}: this server generates at most {bound} tokens per request", param, "max_tokens_exceeded");
        return next(context);
    }
}
