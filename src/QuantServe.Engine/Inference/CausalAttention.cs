using QuantServe.Engine.Kernels.Cpu;

namespace QuantServe.Engine.Inference;

/// <summary>
/// Causal grouped-query attention for every (token, head) pair of a batch, spread over the worker pool.
/// For token t of a sequence at position p and query head h (sharing key/value head h / (heads / kv_heads)):
/// <c>s_j = q·k_j / √head_dim</c> for j in [0, p], <c>a = softmax(s)</c>, <c>out = Σ_j a_j · v_j</c>,
/// reading keys and values of positions 0..p from that sequence's <see cref="KvCache"/> (which already holds this batch's tokens).
/// </summary>
internal sealed unsafe class CausalAttention : IParallelWork
{
    private readonly int _heads, _kvHeads, _headDim, _qDim, _kvDim;
    private readonly float _scale;
    private readonly float[][] _scores; // one per worker, [max positions]

    // Operands of the current call (set by Run, cleared after).
    private float[]? _q, _out;
    private int[]? _positions, _segments;
    private KvCache[]? _caches;
    private int _layer;

    public CausalAttention(int heads, int kvHeads, int headDim, int threads, int maxPositions)
    {
        _heads = heads;
        _kvHeads = kvHeads;
        _headDim = headDim;
        _qDim = heads * headDim;
        _kvDim = kvHeads * headDim;
        _scale = 1f / MathF.Sqrt(headDim);
        _scores = new float[threads][];
        for (int i = 0; i < threads; i++) _scores[i] = new float[maxPositions];
    }

    /// <summary>
    /// Attention for <paramref name="tokens"/> tokens: queries at <c>q[t·q_dim]</c>, results to <c>output[t·q_dim]</c>;
    /// token t sits at <c>positions[t]</c> in <c>caches[segments[t]]</c>.
    /// </summary>
    public void Run(WorkerPool pool, int layer, int tokens, float[] q, float[] output, int[] positions, int[] segments, KvCache[] caches)
    {
        _layer = layer; _q = q; _out = output; _positions = positions; _segments = segments; _caches = caches;
        try { pool.For(this, tokens * _heads); }
        finally { _q = _out = null; _positions = _segments = null; _caches = null; }
    }

    public void Execute(int item, int worker)
    {
        int t = item / _heads, h = item % _heads;
        int kvh = h / (_heads / _kvHeads);
        int pos = _positions![t];
        var cache = _caches![_segments![t]];
        var q = new ReadOnlySpan<float>(_q, t * _qDim + h * _headDim, _headDim);
        var keys = cache.KeyArray(_layer);
        var values = cache.ValueArray(_layer);
        var scores = _scores[worker].AsSpan(0, pos + 1);
        int offset = kvh * _headDim;
        AttentionScores.ScaledDots(q, keys.AsSpan(offset), _kvDim, pos + 1, _scale, scores);
        Softmax.InPlace(scores);
        AttentionScores.WeightedSum(scores, values.AsSpan(offset), _kvDim, pos + 1, new Span<float>(_out, t * _qDim + h * _headDim, _headDim));
    }
}
