using QuantServe.Engine.Gpu;
using QuantServe.Engine.Gpu.Cuda;
using QuantServe.Engine.Models;

namespace QuantServe.Api.Serving;

/// <summary>
/// A model resident on the serving device (<see cref="IDeviceModel"/>): per-sequence device caches, one forward per step
/// for every chunk, greedy and top-k picks sampled on the device (only token ids come back), logits read back only for
/// the rows whose requests need the host sampler. Every call holds the device's gate and binds its context to the
/// calling thread.
/// </summary>
public sealed class DeviceBatchEngine : IBatchEngine
{
    private readonly ServingDevice _device;
    private readonly CudaDevice _cuda;
    private readonly IDeviceModel _model;
    private readonly GpuChunk[] _chunks;
    private readonly int[] _ids;
    private readonly float[] _uniforms;
    private readonly int _vocab;

    /// <summary>Uploads <paramref name="model"/> to <paramref name="device"/> (pieces of up to <paramref name="maxBatchTokens"/> tokens).</summary>
    public DeviceBatchEngine(ServingDevice device, LoadedModel model, int maxBatchTokens)
    {
        var backend = device.Backend ?? throw new InvalidOperationException("no device backend");
        _device = device;
        _cuda = backend.Device;
        lock (device.Gate)
        {
            _cuda.Bind();
            _model = backend.Load(model, maxBatchTokens);
        }
        _vocab = model.Config.VocabSize;
        _chunks = new GpuChunk[_model.MaxBatchTokens];
        _ids = new int[_model.MaxBatchTokens];
        _uniforms = new float[_model.MaxBatchTokens];
    }

    /// <inheritdoc />
    public string Device => _device.Name;

    /// <inheritdoc />
    public bool SamplesOnEngine => true;

    /// <inheritdoc />
    public int MaxPiece => 1;

    /// <inheritdoc />
    public long ResidentBytes => _model is GpuLlamaModel g ? g.DeviceBytes : 0;

    /// <inheritdoc />
    public long CacheBytes(int capacity) => 2L * _model.Config.Layers * capacity * _model.Config.KvDim * sizeof(float);

    /// <inheritdoc />
    public IEngineCache CreateCache(int capacity)
    {
        lock (_device.Gate)
        {
            _cuda.Bind();
            try
            {
                return new Cache(this, _model.CreateCache(capacity));
            }
            catch (CudaException e) when (e.ErrorName == "CUDA_ERROR_OUT_OF_MEMORY" || e.Code == 2)
            {
                throw new EngineMemoryException($"{_device.Name} has no memory left for a {CacheBytes(capacity):N0}-byte KV cache ({capacity} positions)", e);
            }
        }
    }

    /// <inheritdoc />
    public void Step(ReadOnlySpan<EngineChunk> chunks, ReadOnlySpan<TokenPick> picks, Span<float> logits, Span<int> tokens)
    {
        int n = chunks.Length;
        bool anyLogits = false, anyGreedy = false, anyTopK = false;
        for (int i = 0; i < n; i++)
        {
            _chunks[i] = new GpuChunk(((Cache)chunks[i].Cache).Gpu, chunks[i].Tokens);
            anyLogits |= picks[i].Kind == PickKind.Logits;
            anyGreedy |= picks[i].Kind == PickKind.Greedy;
            anyTopK |= picks[i].Kind == PickKind.TopK;
        }
        lock (_device.Gate)
        {
            _cuda.Bind();
            _model.Forward(_chunks.AsSpan(0, n));
            if (anyLogits) _model.ReadLogits(logits[..(n * _vocab)]);
            if (anyGreedy)
            {
                _model.SampleGreedy(_ids.AsSpan(0, n));
                for (int i = 0; i < n; i++)
                    if (picks[i].Kind == PickKind.Greedy) tokens[i] = _ids[i];
            }
            if (anyTopK) SampleTopK(picks, tokens);
        }
        Array.Clear(_chunks, 0, n);
    }

    /// <summary>The device kernel takes one (k, temperature) for all rows: one launch per distinct pair in the batch.</summary>
    private void SampleTopK(ReadOnlySpan<TokenPick> picks, Span<int> tokens)
    {
        int n = picks.Length;
        Span<bool> done = n <= 512 ? stackalloc bool[n] : new bool[n];
        for (int first = 0; first < n; first++)
        {
            var p = picks[first];
            if (p.Kind != PickKind.TopK || done[first]) continue;
            for (int i = 0; i < n; i++) _uniforms[i] = picks[i].Uniform;
            _model.SampleTopK(p.K, p.Temperature, _uniforms.AsSpan(0, n), _ids.AsSpan(0, n));
            for (int i = first; i < n; i++)
                if (picks[i].Kind == PickKind.TopK && picks[i].K == p.K && picks[i].Temperature == p.Temperature)
                {
                    tokens[i] = _ids[i];
                    done[i] = true;
                }
        }
    }

    /// <inheritdoc />
    public void ForwardAll(IEngineCache cache, ReadOnlyMemory<int> tokens, Span<float> logits)
    {
        // The device forward keeps only each chunk's last-token logits, so scoring feeds the prompt one position at a time.
        var gpu = ((Cache)cache).Gpu;
        lock (_device.Gate)
        {
            _cuda.Bind();
            for (int j = 0; j < tokens.Length; j++)
            {
                _model.Forward([new GpuChunk(gpu, tokens.Slice(j, 1))]);
                _model.ReadLogits(logits.Slice(j * _vocab, _vocab));
            }
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        lock (_device.Gate)
        {
            _cuda.Bind();
            _model.Dispose();
        }
    }

    private sealed class Cache(DeviceBatchEngine owner, GpuKvCache gpu) : IEngineCache
    {
        private bool _disposed;
        public GpuKvCache Gpu { get; } = gpu;
        public int Capacity => Gpu.Capacity;
        public long Bytes => Gpu.Bytes;
        public void Clear() => Gpu.Length = 0;

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            lock (owner._device.Gate) Gpu.Dispose();
        }
    }
}
