using QuantServe.Engine.Tokenization;

namespace QuantServe.Engine.Inference.Constraints;

/// <summary>What a constraint needs to know about the generation it restricts.</summary>
/// <param name="Tokenizer">The model's tokenizer (token bytes).</param>
/// <param name="PreviousToken">The last prompt token (-1 when none): the first generated token decodes after it.</param>
/// <param name="StopTokenIds">Tokens that end generation; a constraint allows them only when its output is complete.</param>
public sealed record ConstraintContext(Tokenizer Tokenizer, int PreviousToken, IReadOnlyCollection<int> StopTokenIds);

/// <summary>
/// Restricts which tokens may be sampled at each step (structured output). Per step the generator calls
/// <see cref="ApplyToLogits"/> before sampling and <see cref="Accept"/> with the sampled token.
/// </summary>
public interface ITokenConstraint
{
    /// <summary>Sets the logits of disallowed tokens to negative infinity; returns how many tokens stay allowed.
    /// <paramref name="remainingTokens"/> counts this token and the ones after it (int.MaxValue: no budget).</summary>
    int ApplyToLogits(Span<float> logits, int remainingTokens = int.MaxValue);

    /// <summary>Advances past the sampled token.</summary>
    void Accept(int token);

    /// <summary>Whether the constrained output is complete (only stop tokens are allowed).</summary>
    bool IsComplete { get; }

    /// <summary>Whether a stop token was accepted after completion: the generation must end now.</summary>
    bool IsFinished { get; }
}
