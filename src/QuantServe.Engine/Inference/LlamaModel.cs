using QuantServe.Engine.Kernels.Cpu;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Inference;

/// <summary>
/// The Llama forward pass on the CPU. One call processes a batch made of chunks from one or more sequences (each with its
/// own <see cref="KvCache"/>): a prompt is one chunk of many tokens (matrix-matrix products), decoding several sequences
/// is several one-token chunks. Batches larger than <see cref="MaxBatchTokens"/> are processed in consecutive pieces.
/// All scratch is allocated here once; a forward pass allocates nothing. One instance must not run two forwards at once.
/// </summary>
public sealed class LlamaModel
{
    private readonly ModelConfig _c;
    private readonly LlamaWeights _w;
    private readonly MatMul _matmul;
    private readonly CausalAttention _attention;
    private readonly RopeTable _rope;

    // Activations of the tokens of one piece, row-major [tokens × width].
    private readonly float[] _x;      // residual stream        [T × dim]
    private readonly float[] _xb;     // normed input           [T × dim]
    private readonly float[] _xb2;    // branch output          [T × dim]
    private readonly float[] _q;      // queries                [T × q_dim]
    private readonly float[] _k;      // keys                   [T × kv_dim]
    private readonly float[] _v;      // values                 [T × kv_dim]
    private readonly float[] _att;    // attention output       [T × q_dim]
    private readonly float[] _hb;     // gate, then SwiGLU      [T × hidden]
    private readonly float[] _hb2;    // up                     [T × hidden]

    // Bookkeeping of one piece.
    private readonly int[] _tokens, _positions, _segments;
    private readonly KvCache[] _segCache;
    private readonly int[] _segLast;   // row of the segment's last token in the piece
    private readonly TokenSteps _steps;
    private int _busy;

    /// <summary>Prepares <paramref name="model"/> for inference with batches of up to <paramref name="maxBatchTokens"/> tokens per piece.</summary>
    public LlamaModel(LoadedModel model, int maxBatchTokens = 512, WorkerPool? pool = null)
    {
        if (maxBatchTokens <= 0) throw new ArgumentOutOfRangeException(nameof(maxBatchTokens), maxBatchTokens, "must be positive");
        Source = model;
        _c = model.Config;
        _w = model.Weights;
        Pool = pool ?? WorkerPool.Shared;
        MaxBatchTokens = maxBatchTokens;
        _matmul = new MatMul(Pool);
        _attention = new CausalAttention(_c.Heads, _c.KvHeads, _c.HeadDim, Pool.Threads, _c.ContextLength, maxBatchTokens);
        _rope = new RopeTable(_c.HeadDim, _c.ContextLength, _c.RopeTheta, _c.RopeScale, _c.Rope, _c.RopeFrequencyFactors);
        int T = maxBatchTokens;
        _x = Buffer(T * _c.Dim); _xb = Buffer(T * _c.Dim); _xb2 = Buffer(T * _c.Dim);
        _q = Buffer(T * _c.QDim); _k = Buffer(T * _c.KvDim); _v = Buffer(T * _c.KvDim); _att = Buffer(T * _c.QDim);
        _hb = Buffer(T * _c.HiddenDim); _hb2 = Buffer(T * _c.HiddenDim);
        _tokens = new int[T]; _positions = new int[T]; _segments = new int[T];
        _segCache = new KvCache[T]; _segLast = new int[T];
        _steps = new TokenSteps(this);
    }

    private static float[] Buffer(long n) => GC.AllocateArray<float>(checked((int)n), pinned: true);

    /// <summary>The loaded model (weights, tokenizer, configuration).</summary>
    public LoadedModel Source { get; }

    /// <summary>Hyper-parameters.</summary>
    public ModelConfig Config => _c;

    /// <summary>Vocabulary size: the length of one logits row.</summary>
    public int VocabSize => _c.VocabSize;

    /// <summary>Most tokens processed in one piece.</summary>
    public int MaxBatchTokens { get; }

    /// <summary>Threads the kernels run on.</summary>
    public WorkerPool Pool { get; }

    /// <summary>Optional receiver of every linear layer's input (calibration); null in normal inference.</summary>
    public IActivationObserver? Observer { get; set; }

    /// <summary>A new cache for one sequence of up to <paramref name="capacity"/> positions (default: the model's context length).</summary>
    public KvCache CreateCache(int capacity = 0)
    {
        if (capacity > _c.ContextLength)
            throw new ArgumentOutOfRangeException(nameof(capacity), capacity, $"model context is {_c.ContextLength} positions");
        return new KvCache(_c.Layers, _c.KvDim, capacity <= 0 ? _c.ContextLength : capacity);
    }

    /// <summary>
    /// Runs the model over <paramref name="chunks"/>, appending their keys/values to each chunk's cache, and writes logits
    /// (pre-softmax, vocab-wide rows) to <paramref name="logits"/>: with <paramref name="logitsForAllPositions"/> one row per
    /// token in batch order (Σ token counts rows), otherwise one row per chunk for its last token.
    /// </summary>
    public void Forward(ReadOnlySpan<SequenceChunk> chunks, Span<float> logits, bool logitsForAllPositions = false)
    {
        int totalTokens = Validate(chunks, logits, logitsForAllPositions);
        if (Interlocked.Exchange(ref _busy, 1) != 0)
            throw new InvalidOperationException("LlamaModel.Forward is already running on another thread; use one LlamaModel per thread");
        try
        {
            // Cut the batch into pieces of at most MaxBatchTokens tokens; a long chunk spans several pieces.
            int chunk = 0, offset = 0, tokenBase = 0;
            while (chunk < chunks.Length)
            {
                int T = 0, segs = 0, firstFinal = -1, finals = 0;
                while (chunk < chunks.Length && T < MaxBatchTokens)
                {
                    var c = chunks[chunk];
                    var tokens = c.Tokens.Span;
                    int take = Math.Min(tokens.Length - offset, MaxBatchTokens - T);
                    for (int i = 0; i < take; i++)
                    {
                        _tokens[T + i] = tokens[offset + i];
                        _positions[T + i] = c.StartPosition + offset + i;
                        _segments[T + i] = segs;
                    }
                    _segCache[segs] = c.Cache;
                    T += take;
                    offset += take;
                    if (offset == tokens.Length)
                    {
                        if (firstFinal < 0) firstFinal = chunk;
                        _segLast[finals++] = T - 1;
                        c.Cache.Length = c.StartPosition + tokens.Length;
                        chunk++;
                        offset = 0;
                    }
                    segs++;
                }
                if (logitsForAllPositions)
                    ForwardPiece(T, logits.Slice(tokenBase * VocabSize, T * VocabSize), all: true, finals: 0);
                else if (finals > 0)
                    ForwardPiece(T, logits.Slice(firstFinal * VocabSize, finals * VocabSize), all: false, finals);
                else
                    ForwardPiece(T, Span<float>.Empty, all: false, finals: 0);
                tokenBase += T;
            }
            Array.Clear(_segCache); // do not keep caches alive
        }
        finally { Volatile.Write(ref _busy, 0); }
    }

    /// <summary>Convenience: logits of the last token of one chunk.</summary>
    public void Forward(KvCache cache, ReadOnlyMemory<int> tokens, Span<float> logits)
    {
        Forward([new SequenceChunk(cache, tokens)], logits);
    }

    private void ForwardPiece(int T, Span<float> logits, bool all, int finals)
    {
        int dim = _c.Dim;
        var x = _x.AsSpan(0, T * dim);

        Steps(Step.Embed, 0, T);
        for (int l = 0; l < _c.Layers; l++) RunLayer(l, T);

        // Final norm and the output head, for every token or for the last token of each finished chunk.
        if (all)
        {
            Steps(Step.FinalNorm, 0, T);
            _matmul.Multiply(_w.Output, _xb.AsSpan(0, T * dim), T, dim, logits, VocabSize);
        }
        else if (finals > 0)
        {
            for (int i = 0; i < finals; i++)
                RmsNorm.Apply(x.Slice(_segLast[i] * dim, dim), _w.FinalNorm, _c.NormEps, _xb.AsSpan(i * dim, dim));
            _matmul.Multiply(_w.Output, _xb.AsSpan(0, finals * dim), finals, dim, logits, VocabSize);
        }
    }

    /// <summary>
    /// Runs layer <paramref name="layer"/> alone over one sequence of <paramref name="tokens"/> tokens at positions
    /// 0..tokens−1 (at most <see cref="MaxBatchTokens"/>), whose residual stream <paramref name="hidden"/> (tokens × dim,
    /// row-major) is updated in place; keys and values go to <paramref name="cache"/> (its layer <paramref name="layer"/>).
    /// The <see cref="Observer"/> sees the layer's linear inputs as in <see cref="Forward(ReadOnlySpan{SequenceChunk}, Span{float}, bool)"/>.
    /// Layer-by-layer calibration (GPTQ) keeps every window's hidden state and advances it one layer at a time with this.
    /// </summary>
    public void ForwardLayer(int layer, KvCache cache, Span<float> hidden, int tokens)
    {
        if ((uint)layer >= (uint)_c.Layers) throw new ArgumentOutOfRangeException(nameof(layer), layer, $"the model has {_c.Layers} layers");
        if (tokens <= 0 || tokens > MaxBatchTokens || tokens > cache.Capacity)
            throw new ArgumentOutOfRangeException(nameof(tokens), tokens, $"must be in 1..{Math.Min(MaxBatchTokens, cache.Capacity)}");
        if (hidden.Length < tokens * _c.Dim) throw new ArgumentException($"hidden holds {hidden.Length} floats, {tokens} × {_c.Dim} needed");
        if (Interlocked.Exchange(ref _busy, 1) != 0)
            throw new InvalidOperationException("LlamaModel is already running on another thread; use one LlamaModel per thread");
        try
        {
            for (int t = 0; t < tokens; t++) { _positions[t] = t; _segments[t] = 0; }
            _segCache[0] = cache;
            hidden[..(tokens * _c.Dim)].CopyTo(_x);
            RunLayer(layer, tokens);
            _x.AsSpan(0, tokens * _c.Dim).CopyTo(hidden);
            cache.Length = tokens;
        }
        finally
        {
            _segCache[0] = null!;
            Volatile.Write(ref _busy, 0);
        }
    }

    /// <summary>The token embeddings of <paramref name="tokens"/> into <paramref name="hidden"/> (tokens × dim).</summary>
    public void Embed(ReadOnlySpan<int> tokens, Span<float> hidden)
    {
        int dim = _c.Dim;
        for (int t = 0; t < tokens.Length; t++)
        {
            if ((uint)tokens[t] >= (uint)_c.VocabSize) throw new ArgumentException($"token id {tokens[t]} is outside the vocabulary");
            _w.TokenEmbedding.DequantizeRow(tokens[t], hidden.Slice(t * dim, dim));
        }
    }

    /// <summary>One transformer block over the T tokens set up in the piece buffers, residual stream in _x.</summary>
    private void RunLayer(int l, int T)
    {
        int dim = _c.Dim, qDim = _c.QDim, kvDim = _c.KvDim, hidden = _c.HiddenDim;
        var observer = Observer;
        var layer = _w.Layers[l];

        // Attention: RMSNorm, then q, k, v for every token of the piece in one dispatch.
        Steps(Step.AttentionNorm, l, T);
        observer?.Observe(l, LinearInput.AttentionQkv, _xb.AsSpan(0, T * dim), T, dim);
        _matmul.Multiply(_xb, T, dim, layer.Wq, _q, qDim, layer.Wk, _k, kvDim, layer.Wv, _v, kvDim);

        // Biases (Qwen2), RoPE on q and k, then k and v into each sequence's cache at the token's position.
        Steps(Step.RopeAndCache, l, T);

        // Causal grouped-query attention over each sequence's cache, then the output projection.
        _attention.Run(Pool, l, T, _q, _att, _positions, _segments, _segCache);
        observer?.Observe(l, LinearInput.AttentionOutput, _att.AsSpan(0, T * qDim), T, qDim);
        _matmul.Multiply(layer.Wo, _att.AsSpan(0, T * qDim), T, qDim, _xb2, dim);

        // Feed-forward: residual and RMSNorm, gate and up in one dispatch, SiLU(gate)·up, down projection, residual.
        Steps(Step.ResidualAndFfnNorm, l, T);
        observer?.Observe(l, LinearInput.FfnGateUp, _xb.AsSpan(0, T * dim), T, dim);
        _matmul.Multiply(_xb, T, dim, layer.Gate, _hb, hidden, layer.Up, _hb2, hidden);
        Steps(Step.SwiGlu, l, T);
        observer?.Observe(l, LinearInput.FfnDown, _hb.AsSpan(0, T * hidden), T, hidden);
        _matmul.Multiply(layer.Down, _hb.AsSpan(0, T * hidden), T, hidden, _xb2, dim);
        Steps(Step.Residual, l, T);
    }

    /// <summary>The per-token steps between the matrix products; each token's work is independent of the others'.</summary>
    private enum Step { Embed, AttentionNorm, RopeAndCache, ResidualAndFfnNorm, SwiGlu, Residual, FinalNorm }

    /// <summary>Runs <paramref name="step"/> for tokens 0..T−1: spread over the pool in groups of
    /// <see cref="TokenSteps.GroupTokens"/> for prompt pieces (these steps are ~10% of a prompt's single-thread time and
    /// would otherwise leave the other threads idle), inline for decode batches, where a dispatch costs more than the work.</summary>
    private void Steps(Step step, int layer, int T)
    {
        if (T < 2 * TokenSteps.GroupTokens || Pool.Threads == 1)
        {
            Run(step, layer, 0, T);
            return;
        }
        _steps.Set(step, layer, T);
        Pool.For(_steps, (T + TokenSteps.GroupTokens - 1) / TokenSteps.GroupTokens);
    }

    private void Run(Step step, int l, int t0, int t1)
    {
        int dim = _c.Dim, qDim = _c.QDim, kvDim = _c.KvDim, hidden = _c.HiddenDim;
        var layer = step is Step.Embed or Step.FinalNorm ? null : _w.Layers[l];
        for (int t = t0; t < t1; t++)
        {
            var x = _x.AsSpan(t * dim, dim);
            switch (step)
            {
                case Step.Embed:
                    _w.TokenEmbedding.DequantizeRow(_tokens[t], x);
                    break;
                case Step.AttentionNorm:
                    RmsNorm.Apply(x, layer!.AttnNorm, _c.NormEps, _xb.AsSpan(t * dim, dim));
                    break;
                case Step.RopeAndCache:
                {
                    var q = _q.AsSpan(t * qDim, qDim);
                    var k = _k.AsSpan(t * kvDim, kvDim);
                    var v = _v.AsSpan(t * kvDim, kvDim);
                    if (layer!.Bq != null) ResidualAdd.Apply(q, layer.Bq);
                    if (layer.Bk != null) ResidualAdd.Apply(k, layer.Bk);
                    if (layer.Bv != null) ResidualAdd.Apply(v, layer.Bv);
                    int pos = _positions[t];
                    _rope.Apply(q, pos);
                    _rope.Apply(k, pos);
                    var cache = _segCache[_segments[t]];
                    k.CopyTo(cache.Keys(l).Slice(pos * kvDim, kvDim));
                    v.CopyTo(cache.Values(l).Slice(pos * kvDim, kvDim));
                    break;
                }
                case Step.ResidualAndFfnNorm:
                    ResidualAdd.Apply(x, _xb2.AsSpan(t * dim, dim));
                    RmsNorm.Apply(x, layer!.FfnNorm, _c.NormEps, _xb.AsSpan(t * dim, dim));
                    break;
                case Step.SwiGlu:
                    SwiGlu.Apply(_hb.AsSpan(t * hidden, hidden), _hb2.AsSpan(t * hidden, hidden));
                    break;
                case Step.Residual:
                    ResidualAdd.Apply(x, _xb2.AsSpan(t * dim, dim));
                    break;
                case Step.FinalNorm:
                    RmsNorm.Apply(x, _w.FinalNorm, _c.NormEps, _xb.AsSpan(t * dim, dim));
                    break;
            }
        }
    }

    /// <summary>The pool's view of one <see cref="Step"/>: item i covers tokens [16i, 16i + 16).</summary>
    private sealed class TokenSteps(LlamaModel model) : IParallelWork
    {
        public const int GroupTokens = 16;
        private Step _step;
        private int _layer, _tokens;

        public void Set(Step step, int layer, int tokens) { _step = step; _layer = layer; _tokens = tokens; }

        public void Execute(int item, int worker)
        {
            int t0 = item * GroupTokens;
            model.Run(_step, _layer, t0, Math.Min(_tokens, t0 + GroupTokens));
        }
    }

    private int Validate(ReadOnlySpan<SequenceChunk> chunks, Span<float> logits, bool all)
    {
        int total = 0;
        for (int i = 0; i < chunks.Length; i++)
        {
            var c = chunks[i];
            if (c.Cache is null) throw new ArgumentException($"chunk {i} has no KV cache");
            if (c.Cache.Layers != _c.Layers || c.Cache.KvDim != _c.KvDim)
                throw new ArgumentException($"chunk {i}: KV cache shape ({c.Cache.Layers} layers × {c.Cache.KvDim}) does not match the model ({_c.Layers} × {_c.KvDim})");
            if (c.Tokens.Length == 0) throw new ArgumentException($"chunk {i} has no tokens");
            if (c.StartPosition < 0 || c.StartPosition > c.Cache.Length)
                throw new ArgumentException($"chunk {i} starts at position {c.StartPosition} but its cache holds {c.Cache.Length} positions");
            int end = c.StartPosition + c.Tokens.Length;
            if (end > c.Cache.Capacity || end > _c.ContextLength)
                throw new ArgumentException($"chunk {i} reaches position {end}, beyond the context ({Math.Min(c.Cache.Capacity, _c.ContextLength)} positions)");
            foreach (int token in c.Tokens.Span)
                if ((uint)token >= (uint)_c.VocabSize)
                    throw new ArgumentException($"chunk {i} holds token id {token}, outside the vocabulary [0, {_c.VocabSize})");
            for (int j = 0; j < i; j++)
                if (ReferenceEquals(chunks[j].Cache, c.Cache))
                    throw new ArgumentException($"chunks {j} and {i} share one KV cache; give a sequence one chunk per batch");
            total += c.Tokens.Length;
        }
        long needed = (long)(all ? total : chunks.Length) * _c.VocabSize;
        if (logits.Length < needed)
            throw new ArgumentException($"logits buffer holds {logits.Length} floats but {needed} are needed");
        return total;
    }
}
