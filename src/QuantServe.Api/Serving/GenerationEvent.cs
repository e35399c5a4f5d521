using QuantServe.Engine.Inference;

namespace QuantServe.Api.Serving;

/// <summary>What a sequence reports to its request, in order: optionally <see cref="PromptScored"/>, then
/// <see cref="TokenGenerated"/> per token, then one <see cref="GenerationFinished"/>.</summary>
public abstract record GenerationEvent;

/// <summary>The prompt's token log-probabilities (echo with logprobs).</summary>
/// <param name="Logprobs">log p(prompt[i] | prompt[..i]); entry 0 is NaN (no context).</param>
/// <param name="Top">Most likely alternatives per position; entry 0 is null.</param>
public sealed record PromptScored(float[] Logprobs, TokenLogprob[]?[] Top) : GenerationEvent;

/// <summary>One generated token.</summary>
/// <param name="Token">Token id.</param>
/// <param name="RawText">Text this token completed in the decoded stream (may be empty mid-character).</param>
/// <param name="Text">Text released to the client at this step: stop-sequence look-behind may hold text back or release several tokens' worth.</param>
/// <param name="Logprob">log p of the token (NaN unless requested).</param>
/// <param name="Top">Most likely alternatives (null unless requested).</param>
public sealed record TokenGenerated(int Token, string RawText, string Text, float Logprob, TokenLogprob[]? Top) : GenerationEvent;

/// <summary>The end of a sequence.</summary>
/// <param name="FinishReason"><c>stop</c> or <c>length</c>.</param>
/// <param name="Text">Final text released at the end (held-back look-behind or a flushed partial character).</param>
/// <param name="PromptTokens">Prompt tokens.</param>
/// <param name="CompletionTokens">Tokens generated (an end-of-sequence token included).</param>
/// <param name="EmittedLength">Characters of completion text the client received in total.</param>
/// <param name="FirstTokenSeconds">Seconds from submission to the first generated token, or null.</param>
public sealed record GenerationFinished(string FinishReason, string Text, int PromptTokens, int CompletionTokens, int EmittedLength, double? FirstTokenSeconds) : GenerationEvent;
