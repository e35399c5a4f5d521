using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Kernels.Cpu;

/// <summary>
/// The matrix-multiply driver: <c>y[b, r] = Σ_c x[b, c] · W[r, c]</c> (y = x·Wᵀ) for a batch of activation rows and a
/// <see cref="WeightMatrix"/> of any <see cref="TensorFormat"/>. Activations are first prepared in the format's own form
/// (<see cref="TensorFormat.PrepareActivation"/>) into reusable scratch at a 64-byte-aligned stride; the rows of W are then
/// split into chunks that the <see cref="WorkerPool"/> hands to its threads, each calling <see cref="TensorFormat.DotRows"/>.
/// Up to <see cref="MaxTargets"/> matrices that read the same input (q/k/v, gate/up) run in one dispatch.
/// One instance serves one thread of control (it owns the scratch); after warm-up a call allocates nothing.
/// </summary>
public sealed unsafe class MatMul : IParallelWork
{
    /// <summary>Most matrices one call can multiply.</summary>
    public const int MaxTargets = 4;

    private const int MinChunkRows = 16;
    private readonly WorkerPool _pool;
    private readonly Target[] _targets = new Target[MaxTargets];
    private readonly byte[]?[] _scratch = new byte[]?[MaxTargets];
    private readonly byte[]?[] _tileScratch = new byte[]?[MaxTargets];
    private readonly PrepareWork _prepare = new();
    private int _targetCount;
    private int _batch;

    private struct Target
    {
        public WeightMatrix W;
        public float* Y;
        public int YStride;
        public byte* Act;
        public int ActStride;
        public int ActBytes;
        public byte* Tiles;
        public long TileBytes; // all tiles of the batch; 0 without
        public int ChunkRows;
        public int FirstItem;
    }

    /// <summary>A driver dispatching on <paramref name="pool"/>.</summary>
    public MatMul(WorkerPool pool) => _pool = pool;

    /// <summary>The pool this driver runs on.</summary>
    public WorkerPool Pool => _pool;

    /// <summary>y = x·Wᵀ: <paramref name="x"/> holds <paramref name="batch"/> rows of <c>w.Cols</c> floats at stride <paramref name="xStride"/>;
    /// row b of the result goes to <c>y[b·yStride .. b·yStride + w.Rows)</c>.</summary>
    public void Multiply(WeightMatrix w, ReadOnlySpan<float> x, int batch, int xStride, Span<float> y, int yStride)
    {
        Check(w, x, batch, xStride, y, yStride);
        fixed (float* px = x)
        fixed (float* py = y)
        {
            Begin(batch);
            Add(w, py, yStride);
            Execute(px, xStride, w.Cols);
        }
    }

    /// <summary>Two matrices over the same input in one dispatch (for example gate and up).</summary>
    public void Multiply(ReadOnlySpan<float> x, int batch, int xStride,
        WeightMatrix w0, Span<float> y0, int y0Stride, WeightMatrix w1, Span<float> y1, int y1Stride)
    {
        Check(w0, x, batch, xStride, y0, y0Stride);
        Check(w1, x, batch, xStride, y1, y1Stride);
        SameCols(w0, w1);
        fixed (float* px = x)
        fixed (float* p0 = y0)
        fixed (float* p1 = y1)
        {
            Begin(batch);
            Add(w0, p0, y0Stride);
            Add(w1, p1, y1Stride);
            Execute(px, xStride, w0.Cols);
        }
    }

    /// <summary>Three matrices over the same input in one dispatch (for example q, k and v).</summary>
    public void Multiply(ReadOnlySpan<float> x, int batch, int xStride,
        WeightMatrix w0, Span<float> y0, int y0Stride, WeightMatrix w1, Span<float> y1, int y1Stride,
        WeightMatrix w2, Span<float> y2, int y2Stride)
    {
        Check(w0, x, batch, xStride, y0, y0Stride);
        Check(w1, x, batch, xStride, y1, y1Stride);
        Check(w2, x, batch, xStride, y2, y2Stride);
        SameCols(w0, w1);
        SameCols(w0, w2);
        fixed (float* px = x)
        fixed (float* p0 = y0)
        fixed (float* p1 = y1)
        fixed (float* p2 = y2)
        {
            Begin(batch);
            Add(w0, p0, y0Stride);
            Add(w1, p1, y1Stride);
            Add(w2, p2, y2Stride);
            Execute(px, xStride, w0.Cols);
        }
    }

    private static void Check(WeightMatrix w, ReadOnlySpan<float> x, int batch, int xStride, Span<float> y, int yStride)
    {
        if (batch <= 0) throw new ArgumentOutOfRangeException(nameof(batch), batch, "batch must be positive");
        if (xStride < w.Cols || (long)(batch - 1) * xStride + w.Cols > x.Length)
            throw new ArgumentException($"{w.Name}: input of {x.Length} floats cannot hold {batch} rows of {w.Cols} at stride {xStride}");
        if (yStride < w.Rows || (long)(batch - 1) * yStride + w.Rows > y.Length)
            throw new ArgumentException($"{w.Name}: output of {y.Length} floats cannot hold {batch} rows of {w.Rows} at stride {yStride}");
    }

    private static void SameCols(WeightMatrix a, WeightMatrix b)
    {
        if (a.Cols != b.Cols) throw new ArgumentException($"{a.Name} has {a.Cols} columns but {b.Name} has {b.Cols}; fused matrices must share the input");
    }

    private void Begin(int batch)
    {
        _batch = batch;
        _targetCount = 0;
    }

    private void Add(WeightMatrix w, float* y, int yStride)
    {
        ref var t = ref _targets[_targetCount++];
        t.W = w;
        t.Y = y;
        t.YStride = yStride;
    }

    private void Execute(float* x, int xStride, int cols)
    {
        int threads = _pool.Threads;
        int items = 0;
        for (int i = 0; i < _targetCount; i++)
        {
            ref var t = ref _targets[i];
            var format = t.W.Format;
            int reuse = -1;
            for (int j = 0; j < i; j++)
                if (format.SharesActivations(_targets[j].W.Format)) { reuse = j; break; }
            if (reuse >= 0)
            {
                t.Act = _targets[reuse].Act;
                t.ActStride = _targets[reuse].ActStride;
                t.ActBytes = _targets[reuse].ActBytes;
                t.Tiles = _targets[reuse].Tiles;
                t.TileBytes = _targets[reuse].TileBytes;
            }
            else
            {
                t.ActBytes = format.ActivationBytes(cols);
                t.ActStride = (t.ActBytes + 63) & ~63;
                t.Act = Aligned(ref _scratch[i], (long)t.ActStride * _batch);
                // Prompt batches: the matrix-matrix kernel's regrouped activation tiles are built here once, shared by every
                // thread's rows, instead of by each row chunk.
                int tileTokens = format.TileTokens;
                int tiles = tileTokens > 0 ? _batch / tileTokens : 0;
                long tileBytes = tiles > 0 ? format.TileBytes(cols) : 0;
                t.TileBytes = tiles * tileBytes;
                t.Tiles = t.TileBytes > 0 ? Aligned(ref _tileScratch[i], t.TileBytes) : null;
                Prepare(format, x, xStride, cols, t.Act, t.ActStride, t.ActBytes, tiles, tileTokens, t.Tiles, tileBytes);
            }
            // Chunks of a multiple of 4 rows (the kernels' row block), several per thread for balance. Prompt batches take
            // fewer, larger chunks: the matrix-matrix kernels regroup all of the batch's activations once per call, a cost
            // that must be spread over many rows.
            int rows = t.W.Rows;
            int split = _batch >= 16 ? threads * 2 : threads * 4;
            int chunk = Math.Max(MinChunkRows, (rows + split - 1) / split);
            chunk = (chunk + 3) & ~3;
            t.ChunkRows = chunk;
            t.FirstItem = items;
            items += (rows + chunk - 1) / chunk;
        }
        _pool.For(this, items);
    }

    private static byte* Aligned(ref byte[]? buffer, long bytes)
    {
        long need = bytes + 64;
        if (buffer == null || buffer.Length < need)
            buffer = GC.AllocateUninitializedArray<byte>(checked((int)Math.Max(need, 4096)), pinned: true);
        fixed (byte* b = buffer) return (byte*)(((nint)b + 63) & ~(nint)63); // pinned array: the address is stable
    }

    private void Prepare(TensorFormat format, float* x, int xStride, int cols, byte* act, int actStride, int actBytes,
        int tiles, int tileTokens, byte* tileData, long tileBytes)
    {
        // One item per tile (its vectors, then the regrouping) and one per remaining vector; inline on one thread.
        _prepare.Set(format, x, xStride, cols, act, actStride, actBytes, tiles, tileTokens, tileData, tileBytes);
        int items = tiles + (_batch - tiles * tileTokens);
        if (_batch >= 8) _pool.For(_prepare, items);
        else for (int i = 0; i < items; i++) _prepare.Execute(i, 0); // a few decode vectors: not worth waking the pool
        _prepare.Clear();
    }

    /// <inheritdoc />
    void IParallelWork.Execute(int item, int worker)
    {
        int ti = _targetCount - 1;
        while (_targets[ti].FirstItem > item) ti--;
        ref var t = ref _targets[ti];
        int r0 = (item - t.FirstItem) * t.ChunkRows;
        int r1 = Math.Min(t.W.Rows, r0 + t.ChunkRows);
        var act = new ReadOnlySpan<byte>(t.Act, (_batch - 1) * t.ActStride + t.ActBytes);
        var y = new Span<float>(t.Y, (_batch - 1) * t.YStride + t.W.Rows);
        if (t.TileBytes > 0) t.W.Format.DotRowsTiled(t.W, r0, r1, act, t.ActStride, _batch, new ReadOnlySpan<byte>(t.Tiles, checked((int)t.TileBytes)), y, t.YStride);
        else t.W.Format.DotRows(t.W, r0, r1, act, t.ActStride, _batch, y, t.YStride);
    }

    private sealed class PrepareWork : IParallelWork
    {
        private TensorFormat? _format;
        private float* _x;
        private int _xStride, _cols, _actStride, _actBytes, _tiles, _tileTokens;
        private byte* _act, _tileData;
        private long _tileBytes;

        public void Set(TensorFormat format, float* x, int xStride, int cols, byte* act, int actStride, int actBytes,
            int tiles, int tileTokens, byte* tileData, long tileBytes)
        {
            _format = format; _x = x; _xStride = xStride; _cols = cols; _act = act; _actStride = actStride; _actBytes = actBytes;
            _tiles = tiles; _tileTokens = tileTokens; _tileData = tileData; _tileBytes = tileBytes;
        }

        public void Clear() => _format = null;

        public void Execute(int item, int worker)
        {
            if (item >= _tiles)
            {
                Vector(_tiles * _tileTokens + item - _tiles);
                return;
            }
            int first = item * _tileTokens;
            for (int b = first; b < first + _tileTokens; b++) Vector(b);
            _format!.TileActivations(new ReadOnlySpan<byte>(_act + (long)first * _actStride, (_tileTokens - 1) * _actStride + _actBytes),
                _actStride, _cols, new Span<byte>(_tileData + item * _tileBytes, checked((int)_tileBytes)));
        }

        private void Vector(int b) =>
            _format!.PrepareActivation(new ReadOnlySpan<float>(_x + (long)b * _xStride, _cols), new Span<byte>(_act + (long)b * _actStride, _actBytes));
    }
}
