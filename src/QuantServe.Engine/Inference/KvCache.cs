namespace QuantServe.Engine.Inference;

/// <summary>
/// The attention key/value cache of one sequence: for every layer, F32 keys and values laid out [capacity × kv_dim]
/// (position-major, heads contiguous within a position), allocated once up front. <see cref="Length"/> positions are valid;
/// <c>LlamaModel.Forward</c> writes new positions and advances it.
/// </summary>
public sealed class KvCache
{
    private readonly float[][] _keys;
    private readonly float[][] _values;

    /// <summary>Allocates a cache for <paramref name="capacity"/> positions of a model with <paramref name="layers"/> layers and key/value width <paramref name="kvDim"/>.</summary>
    public KvCache(int layers, int kvDim, int capacity)
    {
        if (layers <= 0 || kvDim <= 0 || capacity <= 0)
            throw new ArgumentOutOfRangeException(nameof(capacity), $"KV cache shape must be positive (layers={layers}, kv_dim={kvDim}, capacity={capacity})");
        Layers = layers;
        KvDim = kvDim;
        Capacity = capacity;
        long perLayer = (long)capacity * kvDim;
        if (perLayer > Array.MaxLength) throw new ArgumentOutOfRangeException(nameof(capacity), $"KV cache layer of {perLayer} floats is too large");
        _keys = new float[layers][];
        _values = new float[layers][];
        for (int l = 0; l < layers; l++)
        {
            _keys[l] = GC.AllocateArray<float>((int)perLayer, pinned: true);
            _values[l] = GC.AllocateArray<float>((int)perLayer, pinned: true);
        }
    }

    /// <summary>Decoder layers.</summary>
    public int Layers { get; }

    /// <summary>Floats per position per layer (kv_heads × head_dim).</summary>
    public int KvDim { get; }

    /// <summary>Positions the cache can hold.</summary>
    public int Capacity { get; }

    /// <summary>Number of valid positions (the next token is written at this position).</summary>
    public int Length { get; internal set; }

    /// <summary>Bytes held by the cache.</summary>
    public long Bytes => 2L * Layers * Capacity * KvDim * sizeof(float);

    /// <summary>Forgets every position, so the cache can serve a new sequence.</summary>
    public void Clear() => Length = 0;

    /// <summary>Keeps only the first <paramref name="length"/> positions (to reuse a shared prompt prefix).</summary>
    public void Truncate(int length)
    {
        if ((uint)length > (uint)Length) throw new ArgumentOutOfRangeException(nameof(length), length, $"cache holds {Length} positions");
        Length = length;
    }

    /// <summary>Keys of layer <paramref name="layer"/>, [capacity × kv_dim].</summary>
    public Span<float> Keys(int layer) => _keys[layer];

    /// <summary>Values of layer <paramref name="layer"/>, [capacity × kv_dim].</summary>
    public Span<float> Values(int layer) => _values[layer];

    internal float[] KeyArray(int layer) => _keys[layer];

    internal float[] ValueArray(int layer) => _values[layer];
}
