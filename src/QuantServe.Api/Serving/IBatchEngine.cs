using QuantServe.Engine.Inference;

namespace QuantServe.Api.Serving;

/// <summary>
/// What <see cref="BatchScheduler"/> needs from whatever runs the model: per-sequence caches and one forward over the
/// chunks of every running sequence, each chunk's token either sampled by the engine or handed back as a logits row.
/// <see cref="CpuBatchEngine"/> runs the CPU <c>LlamaModel</c>; <see cref="DeviceBatchEngine"/> a model resident on an
/// accelerator (<c>IDeviceModel</c>). Called from the scheduler's thread only.
/// </summary>
public interface IBatchEngine : IDisposable
{
    /// <summary>Where the model runs: <c>cpu</c> or the accelerator's description.</summary>
    string Device { get; }

    /// <summary>Whether <see cref="Step"/> can honour <see cref="PickKind.Greedy"/> and <see cref="PickKind.TopK"/>
    /// itself; when false every pick must be <see cref="PickKind.Logits"/>.</summary>
    bool SamplesOnEngine { get; }

    /// <summary>Bytes a cache of <paramref name="capacity"/> positions takes (as allocated).</summary>
    long CacheBytes(int capacity);

    /// <summary>A cache for one sequence of <paramref name="capacity"/> positions; throws
    /// <see cref="EngineMemoryException"/> when the engine's memory cannot hold it.</summary>
    IEngineCache CreateCache(int capacity);

    /// <summary>
    /// Runs <paramref name="chunks"/> (each continuing its cache) and, for chunk i: when <paramref name="picks"/>[i] is
    /// <see cref="TokenPick.Logits"/>, writes its last token's logits to row i of <paramref name="logits"/> (vocab floats
    /// per row); otherwise writes the engine-sampled token id to <paramref name="tokens"/>[i].
    /// </summary>
    void Step(ReadOnlySpan<EngineChunk> chunks, ReadOnlySpan<TokenPick> picks, Span<float> logits, Span<int> tokens);

    /// <summary>Runs <paramref name="tokens"/> on <paramref name="cache"/> (starting at its current length) and writes the
    /// logits of every one of them (prompt scoring), row j for token j.</summary>
    void ForwardAll(IEngineCache cache, ReadOnlyMemory<int> tokens, Span<float> logits);

    /// <summary>Most tokens <see cref="ForwardAll"/> takes at once.</summary>
    int MaxPiece { get; }

    /// <summary>Bytes the engine holds for the model itself (weights and scratch, not caches) on its device; 0 on the CPU,
    /// where the weights are the loaded model's.</summary>
    long ResidentBytes { get; }
}

/// <summary>One sequence's key/value cache in an engine.</summary>
public interface IEngineCache : IDisposable
{
    /// <summary>Positions it holds.</summary>
    int Capacity { get; }

    /// <summary>Bytes it takes.</summary>
    long Bytes { get; }

    /// <summary>Forgets its positions so another sequence can use it.</summary>
    void Clear();
}

/// <summary>Tokens of one sequence for a step: they continue <see cref="Cache"/> at its current length.</summary>
public readonly record struct EngineChunk(IEngineCache Cache, ReadOnlyMemory<int> Tokens);

/// <summary>How the token after a chunk is chosen.</summary>
public enum PickKind
{
    /// <summary>The caller samples on the host from the logits row.</summary>
    Logits,
    /// <summary>The engine takes the arg-max (lowest id on ties).</summary>
    Greedy,
    /// <summary>The engine draws from the softmax at <see cref="TokenPick.Temperature"/> over the <see cref="TokenPick.K"/>
    /// largest logits with <see cref="TokenPick.Uniform"/>.</summary>
    TopK,
}

/// <summary>A chunk's sampling request to the engine.</summary>
/// <param name="Kind">Who samples and how.</param>
/// <param name="K">Candidates for <see cref="PickKind.TopK"/>.</param>
/// <param name="Temperature">Temperature for <see cref="PickKind.TopK"/>.</param>
/// <param name="Uniform">The draw in [0, 1) for <see cref="PickKind.TopK"/>.</param>
public readonly record struct TokenPick(PickKind Kind, int K = 0, float Temperature = 0, float Uniform = 0)
{
    /// <summary>Hand back the logits.</summary>
    public static TokenPick Logits => default;

    /// <summary>Arg-max on the engine.</summary>
    public static TokenPick Greedy => new(PickKind.Greedy);

    /// <summary>Most candidates the device's top-k sampler keeps.</summary>
    public const int MaxDeviceTopK = 64;

    /// <summary>
    /// How a sequence with <paramref name="options"/> can be sampled on an engine with the CPU sampler's semantics, or null
    /// when it needs the host logits: greedy (temperature 0 or top-k 1) and plain top-k (1 &lt; k ≤ 64, temperature &gt; 0,
    /// top-p 1, min-p 0) without logprobs, logit bias, penalties, JSON constraint or seed. Seeded draws stay on the host:
    /// its sampler accumulates probabilities in double, the device's in float, and a seed promises the CPU's exact tokens.
    /// </summary>
    public static PickKind? EngineKind(SamplingOptions options, bool jsonObject)
    {
        if (jsonObject || options.Logprobs || options.TopLogprobs > 0 || options.LogitBias is { Count: > 0 }) return null;
        if (options.RepetitionPenalty != 1f || options.PresencePenalty != 0f || options.FrequencyPenalty != 0f) return null;
        if (options.Temperature == 0 || options.TopK == 1) return PickKind.Greedy;
        if (options.Seed is not null || options.TopP < 1f || options.MinP > 0f) return null;
        return options.TopK is > 1 and <= MaxDeviceTopK ? PickKind.TopK : null;
    }
}

/// <summary>The engine's memory (device memory, or the configured cache budget) cannot hold another sequence's cache.</summary>
public sealed class EngineMemoryException(string message, Exception? inner = null) : Exception(message, inner);
