namespace QuantServe.Api.OpenAi;

/// <summary>A request body that can check its own fields before any serving work starts.</summary>
public interface IValidatableRequest
{
    /// <summary>The first problem found (naming the field in <see cref="OpenAiError.Param"/>), or null when valid.</summary>
    OpenAiError? Validate();
}
