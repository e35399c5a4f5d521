using System.Globalization;
using QuantServe.Api.OpenAi;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;

namespace QuantServe.Api.Serving;

/// <summary>Turns the OpenAI sampling fields into the engine's <see cref="SamplingOptions"/>.</summary>
public static class SamplingMapper
{
    /// <summary>Options for choice <paramref name="choice"/>: unset fields fall back to the model's own generation
    /// defaults, then to OpenAI's (temperature 1, top_p 1). Choice i of a seeded request uses seed + i, so choices
    /// differ from one another yet repeat exactly for the same seed.</summary>
    public static SamplingOptions ToOptions(SamplingRequest r, GenerationDefaults defaults, int choice, bool logprobs, int topLogprobs)
    {
        Dictionary<int, float>? bias = r.LogitBias?.ToDictionary(
            kv => int.Parse(kv.Key, NumberStyles.None, CultureInfo.InvariantCulture), kv => kv.Value);
        return new SamplingOptions
        {
            Temperature = r.Temperature ?? defaults.Temperature ?? 1f,
            TopP = r.TopP ?? defaults.TopP ?? 1f,
            TopK = r.TopK ?? defaults.TopK ?? 0,
            MinP = r.MinP ?? 0f,
            RepetitionPenalty = r.RepetitionPenalty ?? 1f,
            PresencePenalty = r.PresencePenalty ?? 0f,
            FrequencyPenalty = r.FrequencyPenalty ?? 0f,
            LogitBias = bias,
            Seed = r.Seed is { } s ? unchecked((ulong)s + (ulong)choice) : null,
            Logprobs = logprobs || topLogprobs > 0,
            TopLogprobs = topLogprobs,
        };
    }
}
