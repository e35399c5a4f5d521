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
                if (ReferenceEquals(_targets[j].W.Format, format)) { reuse = j; break; }
            if (reuse >= 0)
            {
                t.Act = _targets[reuse].Act;
                t.ActStride = _targets[reuse].ActStride;
                t.ActBytes = _targets[reuse].ActBytes;
            }
            else
            {
                t.ActBytes = format.ActivationBytes(cols);
                t.ActStride = (t.ActBytes + 63) & ~63;
                long need = (long)t.ActStride * _batch + 64;
                var buffer = _scratch[i];
                if (buffer == null || buffer.Length < need)
                    _scratch[i] = buffer = GC.AllocateUninitializedArray<byte>(checked((int)Math.Max(need, 4096)), pinned: true);
                fixed (byte* b = buffer)
                    t.Act = (byte*)(((nint)b + 63) & ~(nint)63); // pinned array: the address is stable
                Prepare(format, x, xStride, cols, t.Act, t.ActStride, t.ActBytes);
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

    private void Prepare(TensorFormat format, float* x, int xStride, int cols, byte* act, int actStride, int actBytes)
    {
        if (_batch >= 8 && _pool.Threads > 1)
        {
            _prepare.Set(format, x, xStride, cols, act, actStride, actBytes);
            _pool.For(_prepare, _batch);
            _prepare.Clear();
            return;
        }
        for (int b = 0; b < _batch; b++)
            format.PrepareActivation(new ReadOnlySpan<float>(x + (long)b * xStride, cols), new Span<byte>(act + (long)b * actStride, actBytes));
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
        t.W.Format.DotRows(t.W, r0, r1, act, t.ActStride, _batch, y, t.YStride);
    }

    private sealed class PrepareWork : IParallelWork
    {
        private TensorFormat? _format;
        private float* _x;
        private int _xStride, _cols, _actStride, _actBytes;
        private byte* _act;

        public void Set(TensorFormat format, float* x, int xStride, int cols, byte* act, int actStride, int actBytes)
        {
            _format = format; _x = x; _xStride = xStride; _cols = cols; _act = act; _actStride = actStride; _actBytes = actBytes;
        }

        public void Clear() => _format = null;

        public void Execute(int item, int worker) =>
            _format!.PrepareActivation(new ReadOnlySpan<float>(_x + (long)item * _xStride, _cols), new Span<byte>(_act + (long)item * _actStride, _actBytes));
    }
}
