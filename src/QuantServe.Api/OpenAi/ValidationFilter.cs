namespace QuantServe.Api.OpenAi;

/// <summary>Endpoint filter: rejects a request whose body fails <see cref="IValidatableRequest.Validate"/> with a 400 envelope.</summary>
public sealed class ValidationFilter<T> : IEndpointFilter where T : class, IValidatableRequest
{
    /// <inheritdoc />
    public ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var body = context.Arguments.OfType<T>().FirstOrDefault();
        if (body is null)
            throw OpenAiException.BadRequest("The request body is missing: send a JSON object");
        if (body.Validate() is { } error) throw new OpenAiException(400, error);
        return next(context);
    }
}
