using QuantServe.Engine.Gpu.Cuda;

namespace QuantServe.Engine.Gpu;

/// <summary>
/// The key/value cache of one sequence on the device: per layer, F32 keys and values [capacity × kv_dim]
/// (the CPU <c>KvCache</c> layout), in two device buffers of layers × capacity × kv_dim floats.
/// </summary>
public sealed class GpuKvCache : IDisposable
{
    internal GpuKvCache(CudaDevice device, int layers, int kvDim, int capacity)
    {
        Layers = layers;
        KvDim = kvDim;
        Capacity = capacity;
        long bytes = (long)layers * capacity * kvDim * sizeof(float);
        Keys = device.Allocate(bytes);
        Values = device.Allocate(bytes);
    }

    /// <summary>Decoder layers.</summary>
    public int Layers { get; }
    /// <summary>Floats per position per layer.</summary>
    public int KvDim { get; }
    /// <summary>Positions the cache can hold.</summary>
    public int Capacity { get; }
    /// <summary>Valid positions; the forward pass advances it.</summary>
    public int Length { get; set; }
    /// <summary>Device bytes of keys and values together.</summary>
    public long Bytes => Keys.Bytes + Values.Bytes;

    internal DeviceBuffer Keys { get; }
    internal DeviceBuffer Values { get; }

    /// <summary>Address of layer <paramref name="layer"/>'s keys.</summary>
    internal ulong KeysAt(int layer) => Keys.At((long)layer * Capacity * KvDim * sizeof(float));
    /// <summary>Address of layer <paramref name="layer"/>'s values.</summary>
    internal ulong ValuesAt(int layer) => Values.At((long)layer * Capacity * KvDim * sizeof(float));

    /// <inheritdoc />
    public void Dispose()
    {
        Keys.Dispose();
        Values.Dispose();
    }
}

/// <summary>Tokens of one sequence to run in a batch: they continue <see cref="Cache"/> at its current length.</summary>
public readonly record struct GpuChunk(GpuKvCache Cache, ReadOnlyMemory<int> Tokens);
