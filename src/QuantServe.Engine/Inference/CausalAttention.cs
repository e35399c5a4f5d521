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
    /// <summary>Queries of one sequence handled together by the four-query kernels.</summary>
    private const int Block = 4;

    private readonly int _heads, _kvHeads, _headDim, _qDim, _kvDim, _maxPositions;
    private readonly int _rowStride; // score row stride: positions rounded up to the 16 keys of the transposed kernel
    private readonly float _scale;
    private readonly bool _multi;
    private readonly float[][] _scores;  // one per worker: [Block + 1 rows × max positions] (the last row is a discard row)
    private readonly float[][] _discard; // one per worker: an output row for the unused query slots of a short block
    private readonly int[] _blockStart, _blockLength;
    private int _blocks;

    // Prompt pieces of one sequence: that layer's keys, transposed per key/value head ([head][c][position], ldk apart),
    // grown on the first prompt that needs it; decoding never uses it.
    private float[]? _keysT;
    private int _ldk;
    private bool _transposed;
    private readonly TransposeWork _transpose;

    // Operands of the current call (set by Run, cleared after).
    private float[]? _q, _out;
    private int[]? _positions, _segments;
    private KvCache[]? _caches;
    private int _layer;

    public CausalAttention(int heads, int kvHeads, int headDim, int threads, int maxPositions, int maxTokens)
    {
        _heads = heads;
        _kvHeads = kvHeads;
        _headDim = headDim;
        _qDim = heads * headDim;
        _kvDim = kvHeads * headDim;
        _maxPositions = maxPositions;
        _scale = 1f / MathF.Sqrt(headDim);
        _rowStride = (maxPositions + 15) & ~15;
        _transpose = new TransposeWork(this);
        _multi = AttentionScores.MultiQuerySupported(headDim);
        _scores = new float[threads][];
        _discard = new float[threads][];
        for (int i = 0; i < threads; i++)
        {
            _scores[i] = GC.AllocateArray<float>((Block + 1) * _rowStride, pinned: true);
            _discard[i] = GC.AllocateArray<float>(headDim, pinned: true);
        }
        _blockStart = new int[maxTokens];
        _blockLength = new int[maxTokens];
    }

    /// <summary>
    /// Attention for <paramref name="tokens"/> tokens: queries at <c>q[t·q_dim]</c>, results to <c>output[t·q_dim]</c>;
    /// token t sits at <c>positions[t]</c> in <c>caches[segments[t]]</c>.
    /// </summary>
    public void Run(WorkerPool pool, int layer, int tokens, float[] q, float[] output, int[] positions, int[] segments, KvCache[] caches)
    {
        // Consecutive tokens of one sequence (a prompt chunk) form blocks of up to four queries per head that share
        // every key and value load; decoding several sequences gives blocks of one.
        _blocks = 0;
        for (int t = 0; t < tokens;)
        {
            int n = 1;
            if (_multi)
                while (n < Block && t + n < tokens && segments[t + n] == segments[t]) n++;
            _blockStart[_blocks] = t;
            _blockLength[_blocks++] = n;
            t += n;
        }
        _layer = layer; _q = q; _out = output; _positions = positions; _segments = segments; _caches = caches;
        try
        {
            // One sequence's prompt: its keys are read by every query block of a head, so transpose them once per layer.
            _transposed = false;
            if (_multi && tokens >= 4 * Block && segments[0] == segments[tokens - 1])
            {
                int count = 0;
                for (int t = 0; t < tokens; t++) count = Math.Max(count, positions[t] + 1);
                _ldk = (count + 15) & ~15;
                long need = (long)_kvDim * _ldk;
                if (_keysT == null || _keysT.Length < need) _keysT = GC.AllocateArray<float>(checked((int)need), pinned: true);
                _transpose.Set(caches[segments[0]].KeyArray(layer), count);
                pool.For(_transpose, _transpose.Items);
                _transposed = true;
            }
            pool.For(this, _blocks * _heads);
        }
        finally { _q = _out = null; _positions = _segments = null; _caches = null; _transpose.Clear(); }
    }

    public void Execute(int item, int worker)
    {
        int b = item / _heads, h = item % _heads;
        int t0 = _blockStart[b], n = _blockLength[b];
        int kvh = h / (_heads / _kvHeads);
        var cache = _caches![_segments![t0]];
        var keys = cache.KeyArray(_layer);
        var values = cache.ValueArray(_layer);
        int offset = kvh * _headDim;
        if (n == 1)
        {
            int pos = _positions![t0];
            var q = new ReadOnlySpan<float>(_q, t0 * _qDim + h * _headDim, _headDim);
            var scores = _scores[worker].AsSpan(0, pos + 1);
            AttentionScores.ScaledDots(q, keys.AsSpan(offset), _kvDim, pos + 1, _scale, scores);
            Softmax.InPlace(scores);
            AttentionScores.WeightedSum(scores, values.AsSpan(offset), _kvDim, pos + 1, new Span<float>(_out, t0 * _qDim + h * _headDim, _headDim));
            return;
        }

        int count = 0;
        for (int k = 0; k < n; k++) count = Math.Max(count, _positions![t0 + k] + 1);
        fixed (float* pq = _q)
        fixed (float* po = _out)
        fixed (float* pk = keys)
        fixed (float* pv = values)
        fixed (float* ps = _scores[worker])
        fixed (float* pd = _discard[worker])
        fixed (float* pt = _keysT)
        {
            // Slots past the block's length repeat its first query and write to the discard rows.
            float* q0 = pq + (long)t0 * _qDim + h * _headDim;
            float* q1 = n > 1 ? q0 + _qDim : q0, q2 = n > 2 ? q0 + 2L * _qDim : q0, q3 = n > 3 ? q0 + 3L * _qDim : q0;
            float* discard = ps + (long)Block * _rowStride;
            float* s0 = ps, s1 = n > 1 ? ps + _rowStride : discard, s2 = n > 2 ? ps + 2L * _rowStride : discard, s3 = n > 3 ? ps + 3L * _rowStride : discard;
            if (_transposed)
                AttentionScores.ScaledDots4QueriesTransposed(q0, q1, q2, q3, pt + (long)kvh * _headDim * _ldk, _ldk, count, _headDim, _scale, s0, s1, s2, s3);
            else
                AttentionScores.ScaledDots4Queries(q0, q1, q2, q3, pk + offset, _kvDim, count, _headDim, _scale, s0, s1, s2, s3);
            for (int k = 0; k < n; k++)
            {
                // Causal: query k sees positions 0..pos_k; later ones (the block's own later tokens) get weight 0.
                var row = new Span<float>(ps + (long)k * _rowStride, count);
                int seen = _positions![t0 + k] + 1;
                Softmax.InPlace(row[..seen]);
                row[seen..].Clear();
            }
            float* o0 = po + (long)t0 * _qDim + h * _headDim;
            float* o1 = n > 1 ? o0 + _qDim : pd, o2 = n > 2 ? o0 + 2L * _qDim : pd, o3 = n > 3 ? o0 + 3L * _qDim : pd;
            AttentionScores.WeightedSum4Queries(s0, s1, s2, s3, pv + offset, _kvDim, count, _headDim, o0, o1, o2, o3);
        }
    }

    /// <summary>Transposes the keys of one layer: item i covers 64 positions of one key/value head.</summary>
    private sealed class TransposeWork(CausalAttention owner) : IParallelWork
    {
        private const int Positions = 64;
        private float[]? _keys;
        private int _count;

        public int Items => owner._kvHeads * ((_count + Positions - 1) / Positions);

        public void Set(float[] keys, int count) { _keys = keys; _count = count; }

        public void Clear() => _keys = null;

        public void Execute(int item, int worker)
        {
            int chunks = (_count + Positions - 1) / Positions;
            int head = item / chunks, first = item % chunks * Positions;
            int d = owner._headDim, ldk = owner._ldk;
            fixed (float* pk = _keys)
            fixed (float* pt = owner._keysT)
            {
                float* kt = pt + (long)head * d * ldk;
                AttentionScores.TransposeKeys(pk + head * d, owner._kvDim, first, Math.Min(_count, first + Positions), d, kt, ldk);
                if (first + Positions >= _count) // zero the padding up to ldk so the extra scores stay finite
                    for (int c = 0; c < d; c++) new Span<float>(kt + (long)c * ldk + _count, ldk - _count).Clear();
            }
        }
    }
}
