using System.Runtime.InteropServices;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Kernels.Cpu;
using QuantServe.Engine.Models;

namespace QuantServe.Api.Serving;

/// <summary>The CPU engine: the engine's <see cref="LlamaModel"/> over the loaded weights, F32 caches in managed memory,
/// every token sampled on the host (the scheduler's <see cref="Sampler"/>).</summary>
public sealed class CpuBatchEngine : IBatchEngine
{
    // One forward at a time in the process: the kernels' worker pool is shared by every model.
    private static readonly Lock ForwardGate = new();

    private readonly LlamaModel _model;
    private readonly List<SequenceChunk> _chunks = [];

    /// <summary>Prepares <paramref name="model"/> with pieces of up to <paramref name="maxBatchTokens"/> tokens.</summary>
    public CpuBatchEngine(LoadedModel model, int maxBatchTokens, WorkerPool? workers = null)
        => _model = new LlamaModel(model, maxBatchTokens, workers);

    /// <inheritdoc />
    public string Device => "cpu";

    /// <inheritdoc />
    public bool SamplesOnEngine => false;

    /// <inheritdoc />
    public int MaxPiece => Math.Max(1, Math.Min(_model.MaxBatchTokens, 256));

    /// <inheritdoc />
    public long ResidentBytes => 0;

    /// <inheritdoc />
    public long CacheBytes(int capacity) => 2L * _model.Config.Layers * capacity * _model.Config.KvDim * sizeof(float);

    /// <inheritdoc />
    public IEngineCache CreateCache(int capacity)
    {
        try { return new Cache(_model.CreateCache(capacity)); }
        catch (OutOfMemoryException e) { throw new EngineMemoryException($"no host memory for a {CacheBytes(capacity):N0}-byte KV cache", e); }
    }

    /// <inheritdoc />
    public void Step(ReadOnlySpan<EngineChunk> chunks, ReadOnlySpan<TokenPick> picks, Span<float> logits, Span<int> tokens)
    {
        foreach (var p in picks)
            if (p.Kind != PickKind.Logits) throw new ArgumentException("the CPU engine returns logits; the host samples");
        _chunks.Clear();
        foreach (var c in chunks) _chunks.Add(new SequenceChunk(((Cache)c.Cache).Kv, c.Tokens));
        lock (ForwardGate)
            _model.Forward(CollectionsMarshal.AsSpan(_chunks), logits[..(chunks.Length * _model.VocabSize)]);
    }

    /// <inheritdoc />
    public void ForwardAll(IEngineCache cache, ReadOnlyMemory<int> tokens, Span<float> logits)
    {
        var kv = ((Cache)cache).Kv;
        lock (ForwardGate)
            _model.Forward([new SequenceChunk(kv, tokens)], logits[..(tokens.Length * _model.VocabSize)], logitsForAllPositions: true);
    }

    /// <inheritdoc />
    public void Dispose() { }

    private sealed class Cache(KvCache kv) : IEngineCache
    {
        public KvCache Kv { get; } = kv;
        public int Capacity => Kv.Capacity;
        public long Bytes => Kv.Bytes;
        public void Clear() => Kv.Clear();
        public void Dispose() { }
    }
}
