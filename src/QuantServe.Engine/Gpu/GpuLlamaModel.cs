using QuantServe.Engine.Gpu.Cuda;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Gpu;

/// <summary>
/// The Llama forward pass on a CUDA device, the same math as the CPU <c>LlamaModel</c>: weights, norms, RoPE tables,
/// scratch and every sequence's KV cache are resident on the device; a step uploads token ids (plus positions and cache
/// addresses) and returns only sampled token ids — or, when asked, the logits. Per layer: RMSNorm → q/k/v fused-dequant
/// GEMV → RoPE + cache store → causal GQA attention → o GEMV accumulated into the residual → RMSNorm → gate/up GEMV →
/// SwiGLU → down GEMV accumulated into the residual; then the final RMSNorm of each chunk's last token and the output
/// head. A batch of T tokens (a prompt, or one token of each of T sequences) runs every product on the tensor-core GEMM
/// when T ≥ 16 (sm_80+; <see cref="GpuGemm"/>), else every GEMV once per tile of 16 tokens, so the weights are read once
/// per tile; prompt chunks of 8+ tokens use the tiled <see cref="GpuPrefillAttention"/>. One instance must be driven by
/// one thread at a time.
/// </summary>
public sealed unsafe class GpuLlamaModel : IDeviceModel
{
    private readonly CudaDevice _d;
    private readonly GpuKernels _k;
    private readonly ModelConfig _c;
    private readonly GpuLayer[] _layers;
    private readonly GpuMatrix _output;
    private readonly DeviceBuffer _embedding, _finalNorm, _cos, _sin;
    private readonly bool _embeddingF16;
    private readonly long _embeddingRowElements;
    private readonly int _pd, _pq, _pqkv, _ph, _maxSplits;
    private readonly DeviceBuffer _x, _xb, _qkv, _att, _attPart, _hb, _hb2, _logits;
    private readonly DeviceBuffer _tokens, _positions, _kptr, _vptr, _rows, _ids, _uniforms;
    private readonly int[] _hTokens, _hPositions, _hRows;
    private readonly ulong[] _hK, _hV;
    private readonly List<DeviceBuffer> _owned = [];
    private readonly GpuActivations _qa;
    private readonly GpuPrefillAttention _prefill;
    private readonly Dictionary<int, nint> _decodeGraphs = [];
    private int _finals;

    private sealed class GpuLayer
    {
        public required DeviceBuffer AttnNorm, FfnNorm;
        public DeviceBuffer? Bq, Bk, Bv;
        public required GpuMatrix Wq, Wk, Wv, Wo, Gate, Up, Down;
        // q/k/v and gate/up stacked into one matrix each when their formats allow (Wq..Up are then row-range views of them).
        public GpuMatrix? Qkv, GateUp;
        public IEnumerable<GpuMatrix> Matrices => [Wq, Wk, Wv, Wo, Gate, Up, Down];
    }

    private GpuLayer UploadLayer(LayerWeights l)
    {
        GpuMatrix? qkv = null, gateUp = null;
        GpuMatrix[] qkvParts, ffnParts;
        if (GpuMatrix.CanStack([l.Wq, l.Wk, l.Wv])) (qkv, qkvParts) = GpuMatrix.UploadStacked(_d, $"{l.Wq.Name}+k+v", [l.Wq, l.Wk, l.Wv]);
        else qkvParts = [GpuMatrix.Upload(_d, l.Wq), GpuMatrix.Upload(_d, l.Wk), GpuMatrix.Upload(_d, l.Wv)];
        if (GpuMatrix.CanStack([l.Gate, l.Up])) (gateUp, ffnParts) = GpuMatrix.UploadStacked(_d, $"{l.Gate.Name}+up", [l.Gate, l.Up]);
        else ffnParts = [GpuMatrix.Upload(_d, l.Gate), GpuMatrix.Upload(_d, l.Up)];
        return new GpuLayer
        {
            AttnNorm = Floats(l.AttnNorm), FfnNorm = Floats(l.FfnNorm),
            Bq = l.Bq is null ? null : Floats(l.Bq), Bk = l.Bk is null ? null : Floats(l.Bk), Bv = l.Bv is null ? null : Floats(l.Bv),
            Wq = qkvParts[0], Wk = qkvParts[1], Wv = qkvParts[2], Qkv = qkv,
            Wo = GpuMatrix.Upload(_d, l.Wo), Gate = ffnParts[0], Up = ffnParts[1], GateUp = gateUp,
            Down = GpuMatrix.Upload(_d, l.Down),
        };
    }

    private static int Pad(int n) => (n + 255) & ~255;

    /// <summary>Uploads <paramref name="model"/> to the device; batches of up to <paramref name="maxBatchTokens"/> tokens per piece.</summary>
    public GpuLlamaModel(CudaDevice device, GpuKernels kernels, LoadedModel model, int maxBatchTokens = 256)
    {
        if (maxBatchTokens <= 0) throw new ArgumentOutOfRangeException(nameof(maxBatchTokens), maxBatchTokens, "must be positive");
        if (model.Config.HeadDim > 256) throw new NotSupportedException($"head_dim {model.Config.HeadDim} exceeds the GPU attention kernel's 256");
        _d = device;
        _k = kernels;
        _programmatic = kernels.CanLaunchProgrammatic;
        _c = model.Config;
        Source = model;
        MaxBatchTokens = maxBatchTokens;
        device.Bind();
        var w = model.Weights;
        _layers = w.Layers.Select(UploadLayer).ToArray();
        _output = GpuMatrix.Upload(device, w.Output);
        _finalNorm = Floats(w.FinalNorm);
        (_embedding, _embeddingF16, _embeddingRowElements) = UploadEmbedding(w.TokenEmbedding);
        (_cos, _sin) = RopeTables();

        int T = maxBatchTokens;
        _pd = Pad(_c.Dim); _pq = Pad(_c.QDim); _pqkv = Pad(_c.QDim + 2 * _c.KvDim); _ph = Pad(_c.HiddenDim);
        _x = Zeroed(T * (long)_pd); _xb = Zeroed(T * (long)_pd);
        _qkv = Zeroed(T * (long)_pqkv); _att = Zeroed(T * (long)_pq);
        _maxSplits = kernels.AttentionSplits(_c.Heads, 1);
        long part = 0;
        for (int t = 1; t <= T; t++) part = Math.Max(part, GpuKernels.AttentionScratchFloats(t, _c.Heads, _c.HeadDim, kernels.AttentionSplits(_c.Heads, t)));
        _attPart = Zeroed(part);
        _hb = Zeroed(T * (long)_ph); _hb2 = Zeroed(T * (long)_ph);
        _logits = Zeroed(T * (long)_c.VocabSize);
        _tokens = Zeroed(T); _positions = Zeroed(T); _rows = Zeroed(T); _ids = Zeroed(T); _uniforms = Zeroed(T);
        _kptr = Zeroed(2L * T * _c.Layers); _vptr = Zeroed(2L * T * _c.Layers);
        _qa = new GpuActivations(device, T, Math.Max(Math.Max(_pd, _pq), _ph));
        _prefill = new GpuPrefillAttention(device, T, _c.HeadDim);
        _hTokens = new int[T]; _hPositions = new int[T]; _hRows = new int[T];
        _hK = new ulong[T * _c.Layers]; _hV = new ulong[T * _c.Layers];
        device.Synchronize();
    }

    private DeviceBuffer Own(DeviceBuffer b) { _owned.Add(b); return b; }

    private DeviceBuffer Floats(float[] values)
    {
        var b = Own(_d.Allocate(values.Length * 4L));
        _d.Upload<float>(values, b.Pointer);
        return b;
    }

    private DeviceBuffer Zeroed(long floats) => Own(_d.AllocateZeroed(floats * 4));

    private (DeviceBuffer, bool, long) UploadEmbedding(WeightMatrix e)
    {
        int rows = e.Rows, cols = e.Cols;
        if (e.Format.Ggml is GgmlType.F32 or GgmlType.F16)
        {
            bool f16 = e.Format.Ggml == GgmlType.F16;
            var b = Own(_d.Allocate(e.ByteCount));
            _d.Upload(e.Data, b.Pointer, e.ByteCount);
            return (b, f16, e.RowBytes / (f16 ? 2 : 4));
        }
        // Other formats: dequantized once to F16 rows (a lookup reads one row per token, so the table's format does not matter for speed).
        var table = Own(_d.Allocate((long)rows * cols * 2));
        var row = new float[cols];
        var half = new Half[Math.Min(rows, Math.Max(1, (16 << 20) / Math.Max(1, cols))) * cols];
        int perChunk = half.Length / cols;
        for (int r0 = 0; r0 < rows; r0 += perChunk)
        {
            int n = Math.Min(perChunk, rows - r0);
            for (int r = 0; r < n; r++)
            {
                e.DequantizeRow(r0 + r, row);
                for (int c = 0; c < cols; c++) half[r * cols + c] = (Half)row[c];
            }
            _d.Upload<Half>(half.AsSpan(0, n * cols), table.At((long)r0 * cols * 2));
        }
        return (table, true, cols);
    }

    private (DeviceBuffer, DeviceBuffer) RopeTables()
    {
        // Same angles as the CPU RopeTable: θ_i = (p / scale) · base^(−2i/head_dim) / factor_i in double, stored as float.
        int half = _c.HeadDim / 2, positions = _c.ContextLength;
        var freq = new double[half];
        for (int i = 0; i < half; i++) freq[i] = Math.Pow(_c.RopeTheta, -2.0 * i / _c.HeadDim) / (_c.RopeFrequencyFactors?[i] ?? 1.0);
        var cos = new float[(long)positions * half];
        var sin = new float[(long)positions * half];
        for (int p = 0; p < positions; p++)
            for (int i = 0; i < half; i++)
            {
                double angle = p / (double)_c.RopeScale * freq[i];
                cos[(long)p * half + i] = (float)Math.Cos(angle);
                sin[(long)p * half + i] = (float)Math.Sin(angle);
            }
        return (Floats(cos), Floats(sin));
    }

    /// <summary>The model as loaded on the host.</summary>
    public LoadedModel Source { get; }
    /// <summary>Hyper-parameters.</summary>
    public ModelConfig Config => _c;
    /// <summary>Most tokens per piece (and most chunks per call).</summary>
    public int MaxBatchTokens { get; }
    /// <summary>The device.</summary>
    public CudaDevice Device => _d;
    /// <summary>Every resident matrix (layers in order, then the head).</summary>
    public IEnumerable<GpuMatrix> Matrices => _layers.SelectMany(l => l.Matrices).Append(_output);
    /// <summary>Bytes one decode step reads from weights: every layer matrix and the head once (embedding rows are negligible).</summary>
    public long WeightReadBytesPerStep => Matrices.Sum(m => m.ReadBytes);

    /// <summary>A device KV cache for one sequence of up to <paramref name="capacity"/> positions (default: the context length).</summary>
    public GpuKvCache CreateCache(int capacity = 0)
    {
        if (capacity > _c.ContextLength) throw new ArgumentOutOfRangeException(nameof(capacity), capacity, $"model context is {_c.ContextLength} positions");
        return new GpuKvCache(_d, _c.Layers, _c.KvDim, capacity <= 0 ? _c.ContextLength : capacity);
    }

    /// <summary>
    /// Runs <paramref name="chunks"/> (each continuing its cache) and leaves on the device the logits of each chunk's last
    /// token, in chunk order, for <see cref="ReadLogits"/>, <see cref="SampleGreedy"/> or <see cref="SampleTopK"/>.
    /// Nothing is waited for: the work is queued on the device's stream.
    /// </summary>
    public void Forward(ReadOnlySpan<GpuChunk> chunks)
    {
        if (chunks.Length == 0) throw new ArgumentException("no chunks");
        if (chunks.Length > MaxBatchTokens) throw new ArgumentException($"{chunks.Length} chunks exceed the batch limit of {MaxBatchTokens}");
        for (int i = 0; i < chunks.Length; i++)
        {
            var c = chunks[i];
            if (c.Cache is null || c.Cache.Layers != _c.Layers || c.Cache.KvDim != _c.KvDim) throw new ArgumentException($"chunk {i}: KV cache does not belong to this model");
            if (c.Tokens.Length == 0) throw new ArgumentException($"chunk {i} has no tokens");
            if (c.Cache.Length + c.Tokens.Length > c.Cache.Capacity) throw new ArgumentException($"chunk {i} reaches position {c.Cache.Length + c.Tokens.Length}, beyond its cache ({c.Cache.Capacity} positions)");
            foreach (int t in c.Tokens.Span)
                if ((uint)t >= (uint)_c.VocabSize) throw new ArgumentException($"chunk {i} holds token id {t}, outside the vocabulary [0, {_c.VocabSize})");
            for (int j = 0; j < i; j++)
                if (ReferenceEquals(chunks[j].Cache, c.Cache)) throw new ArgumentException($"chunks {j} and {i} share one KV cache");
        }
        _finals = 0;
        int chunk = 0, offset = 0;
        while (chunk < chunks.Length)
        {
            int T = 0, finalsBefore = _finals;
            while (chunk < chunks.Length && T < MaxBatchTokens)
            {
                var c = chunks[chunk];
                var tokens = c.Tokens.Span;
                int take = Math.Min(tokens.Length - offset, MaxBatchTokens - T);
                for (int i = 0; i < take; i++)
                {
                    _hTokens[T + i] = tokens[offset + i];
                    _hPositions[T + i] = c.Cache.Length + offset + i;
                    for (int l = 0; l < _c.Layers; l++)
                    {
                        _hK[l * MaxBatchTokens + T + i] = c.Cache.KeysAt(l);
                        _hV[l * MaxBatchTokens + T + i] = c.Cache.ValuesAt(l);
                    }
                }
                T += take;
                offset += take;
                if (offset == tokens.Length)
                {
                    _hRows[_finals++ - finalsBefore] = T - 1;
                    chunk++;
                    offset = 0;
                }
            }
            Piece(T, finalsBefore, _finals - finalsBefore);
        }
        foreach (var c in chunks) c.Cache.Length += c.Tokens.Length;
    }

    private void UploadAsync<T>(T[] host, int count, ulong dst) where T : unmanaged
    {
        fixed (T* p = host)
            _d.Driver.Check(_d.Driver.cuMemcpyHtoDAsync(dst, p, (nuint)(count * sizeof(T)), _d.Stream), "cuMemcpyHtoDAsync");
    }

    private void Piece(int T, int firstFinal, int finals)
    {
        int dim = _c.Dim, hd = _c.HeadDim, L = _c.Layers;
        UploadAsync(_hTokens, T, _tokens.Pointer);
        UploadAsync(_hPositions, T, _positions.Pointer);
        UploadAsync(_hK, L * MaxBatchTokens, _kptr.Pointer);
        UploadAsync(_hV, L * MaxBatchTokens, _vptr.Pointer);
        if (finals > 0) UploadAsync(_hRows, finals, _rows.Pointer);
        _prefill.Plan(_hPositions, _hK, T);
        // A decode step (every token the last of its chunk, one piece) has the same kernels with the same arguments for a
        // given batch size: everything that changes lives in the device buffers uploaded above. It is captured once as a
        // CUDA graph and replayed, which removes the per-kernel launch cost that dominates small-batch decoding.
        if (UseGraphs && finals == T && firstFinal == 0)
        {
            int key = _k.UsesGemm(T) ? -T : T; // the GEMM switch changes the kernels a graph holds
            if (!_decodeGraphs.TryGetValue(key, out var exec))
            {
                try { exec = _d.Capture(() => Kernels(T, 0, finals)); }
                catch (CudaException) when (_programmatic && _k.CanLaunchProgrammatic)
                {
                    // A driver that launches programmatic kernels but cannot capture them: capture plain launches.
                    _programmatic = false;
                    exec = _d.Capture(() => Kernels(T, 0, finals));
                }
                _decodeGraphs[key] = exec;
            }
            _d.LaunchGraph(exec);
            return;
        }
        Kernels(T, firstFinal, finals);
    }

    /// <summary>Whether decode steps replay a captured CUDA graph (default true).</summary>
    public bool UseGraphs { get; set; } = true;

    /// <summary>The prompt-chunk attention (its <see cref="GpuPrefillAttention.MinRunTokens"/> switches it off for comparisons).</summary>
    public GpuPrefillAttention PrefillAttention => _prefill;

    /// <summary>
    /// Whether attention runs split-K (flash-decoding: each (token, head) spread over several blocks along the cache, then
    /// combined; default true) rather than one block per (token, head). Changing it drops the captured decode graphs.
    /// </summary>
    public bool SplitAttention
    {
        get => _splitAttention;
        set
        {
            if (value == _splitAttention) return;
            _splitAttention = value;
            foreach (var g in _decodeGraphs.Values) _d.DestroyGraph(g);
            _decodeGraphs.Clear();
        }
    }
    private bool _splitAttention = true;

    /// <summary>
    /// Whether the kernels of a step after the first are queued with programmatic dependent launch where the device supports
    /// it (Hopper or newer): each is scheduled while its predecessor drains, and the GEMV kernels load their first weights
    /// before waiting for it. Default on where <see cref="GpuKernels.CanLaunchProgrammatic"/>: on an H100 the graph-replayed
    /// TinyLlama-shaped Q4_K_M decode at batch 1 measured 716 → 761 tok/s (five runs, +5 to +9% each). Changing it drops the
    /// captured graphs.
    /// </summary>
    public bool ProgrammaticLaunch
    {
        get => _programmatic;
        set
        {
            if (value == _programmatic) return;
            _programmatic = value;
            foreach (var g in _decodeGraphs.Values) _d.DestroyGraph(g);
            _decodeGraphs.Clear();
        }
    }
    private bool _programmatic;

    /// <summary>
    /// Queues one piece. Per layer: RMSNorm fused with the int8 quantization of its output (when an integer-dot matrix
    /// reads it), q/k/v as one GEMV over the stacked matrix into one [q | k | v] row per token, RoPE + cache store, attention
    /// (split-K, its combine step also quantizing the output for W_o), W_o accumulated into the residual, RMSNorm +
    /// quantization, gate/up/SwiGLU as one GEMV over the stacked matrix, quantization, W_down accumulated into the residual.
    /// Formats that cannot be stacked run the same steps as separate launches. Pieces of <see cref="GpuKernels.GemmMinTokens"/>
    /// or more tokens quantize nothing: q/k/v is one tensor-core GEMM over the stacked matrix, gate and up two GEMMs over its
    /// row-range views then the SwiGLU op (the fused SwiGLU epilogue exists only in the integer-dot GEMV), and prompt chunks
    /// of 8+ tokens take the tiled prefill attention.
    /// </summary>
    private void Kernels(int T, int firstFinal, int finals)
    {
        // The embedding follows the host copies of the step, so it is launched normally; the rest may overlap launches.
        _d.Launch(_k.Embed, (T, 1), 256, 0, _embedding, _embeddingF16 ? 1 : 0, _embeddingRowElements, _tokens, _x, _pd, _c.Dim);
        _k.Programmatic = _programmatic && _k.CanLaunchProgrammatic;
        try { Layers(T, firstFinal, finals); }
        finally { _k.Programmatic = false; }
    }

    private void Layers(int T, int firstFinal, int finals)
    {
        int dim = _c.Dim, hd = _c.HeadDim, L = _c.Layers;
        ulong q = _qkv.Pointer, k = _qkv.At(_c.QDim * 4L), v = _qkv.At((_c.QDim + _c.KvDim) * 4L);
        float scale = 1f / MathF.Sqrt(hd);
        bool split = _splitAttention && hd % 4 == 0;
        int maxSplits = _k.AttentionSplits(_c.Heads, T);
        bool gemm = _k.UsesGemm(T);
        for (int l = 0; l < L; l++)
        {
            var layer = _layers[l];
            var qa = Norm(_x.Pointer, 0, layer.AttnNorm, T, layer.Wq, layer.Wk, layer.Wv);
            if (layer.Qkv != null) _k.Gemv(layer.Qkv, _xb.Pointer, _pd, q, _pqkv, T, false, qa);
            else
            {
                _k.Gemv(layer.Wq, _xb.Pointer, _pd, q, _pqkv, T, false, qa);
                _k.Gemv(layer.Wk, _xb.Pointer, _pd, k, _pqkv, T, false, qa);
                _k.Gemv(layer.Wv, _xb.Pointer, _pd, v, _pqkv, T, false, qa);
            }
            if (layer.Bq != null) _k.Launch(_k.AddBias, (T, 1), 256, 0, q, _pqkv, layer.Bq, _c.QDim);
            if (layer.Bk != null) _k.Launch(_k.AddBias, (T, 1), 256, 0, k, _pqkv, layer.Bk, _c.KvDim);
            if (layer.Bv != null) _k.Launch(_k.AddBias, (T, 1), 256, 0, v, _pqkv, layer.Bv, _c.KvDim);
            ulong kc = _kptr.At((long)l * MaxBatchTokens * 8), vc = _vptr.At((long)l * MaxBatchTokens * 8);
            _k.Launch(_k.RopeStore, (T, 1), 128, 0, q, _pqkv, k, v, _pqkv, _positions, _cos, _sin,
                _c.Heads, _c.KvHeads, hd, _c.Rope == RopeStyle.Neox ? 1 : 0, kc, vc, 0L);
            bool woDot = GpuKernels.UsesIntegerDot(layer.Wo);
            GpuActivations? qo;
            if (_prefill.Tiles > 0)
            {
                _prefill.Launch(q, _pqkv, _att.Pointer, _pq, _positions.Pointer, kc, vc, 0L, _c.Heads, _c.KvHeads, hd, scale);
                qo = Quantized(_att.Pointer, _pq, _c.QDim, T, layer.Wo);
            }
            else if (split)
            {
                bool quantized = _k.DecodeAttention(q, _pqkv, _att.Pointer, _pq, _positions.Pointer, kc, vc, 0L, _c.Heads, _c.KvHeads, hd, scale, T,
                    _attPart.Pointer, maxSplits, woDot && !gemm ? _qa : null);
                qo = quantized ? _qa : Quantized(_att.Pointer, _pq, _c.QDim, T, layer.Wo);
            }
            else
            {
                _k.AttentionSingle(q, _pqkv, _att.Pointer, _pq, _positions.Pointer, kc, vc, 0L, _c.Heads, _c.KvHeads, hd, scale, T);
                qo = Quantized(_att.Pointer, _pq, _c.QDim, T, layer.Wo);
            }
            _k.Gemv(layer.Wo, _att.Pointer, _pq, _x.Pointer, _pd, T, true, qo);
            qa = Norm(_x.Pointer, 0, layer.FfnNorm, T, layer.Gate, layer.Up);
            if (layer.GateUp != null && qa != null) _k.GemvGlu(layer.GateUp, qa, _hb.Pointer, _ph, T);
            else
            {
                _k.Gemv(layer.Gate, _xb.Pointer, _pd, _hb.Pointer, _ph, T, false, qa);
                _k.Gemv(layer.Up, _xb.Pointer, _pd, _hb2.Pointer, _ph, T, false, qa);
                _k.Launch(_k.SwiGlu, (T, 1), 256, 0, _hb, _hb2, _ph, _c.HiddenDim);
            }
            _k.Gemv(layer.Down, _hb.Pointer, _ph, _x.Pointer, _pd, T, true, Quantized(_hb.Pointer, _ph, _c.HiddenDim, T, layer.Down));
        }
        if (finals == 0) return;
        var qf = Norm(_x.Pointer, _rows.Pointer, _finalNorm, finals, _output);
        _k.Gemv(_output, _xb.Pointer, _pd, _logits.At((long)firstFinal * _c.VocabSize * 4), _c.VocabSize, finals, false, qf);
    }

    /// <summary>RMSNorm of <paramref name="x"/> rows (rows: the row indices, 0 = 1:1) into _xb, fused with the int8 quantization when a consumer reads it (and the product is no GEMM).</summary>
    private GpuActivations? Norm(ulong x, ulong rows, DeviceBuffer weight, int T, params ReadOnlySpan<GpuMatrix> consumers)
    {
        if (!_k.UsesGemm(T))
            foreach (var m in consumers)
                if (GpuKernels.UsesIntegerDot(m))
                {
                    _k.RmsNormQuantize(x, _pd, rows, weight.Pointer, _xb.Pointer, _pd, _c.Dim, _c.NormEps, T, _qa);
                    return _qa;
                }
        _k.Launch(_k.RmsNorm, (T, 1), 256, 0, x, _pd, rows, weight, _xb, _pd, _c.Dim, _c.NormEps);
        return null;
    }

    /// <summary>Quantizes the input rows for the integer-dot kernels when one of <paramref name="consumers"/> uses them.</summary>
    private GpuActivations? Quantized(ulong x, int xs, int cols, int T, params ReadOnlySpan<GpuMatrix> consumers)
    {
        if (_k.UsesGemm(T)) return null;
        foreach (var m in consumers)
            if (GpuKernels.UsesIntegerDot(m))
            {
                _k.Quantize(x, xs, cols, T, _qa);
                return _qa;
            }
        return null;
    }

    /// <summary>Copies the logits of the last <see cref="Forward"/> (one vocab-wide row per chunk) to <paramref name="destination"/>.</summary>
    public void ReadLogits(Span<float> destination)
    {
        long n = (long)_finals * _c.VocabSize;
        if (destination.Length < n) throw new ArgumentException($"logits buffer holds {destination.Length} floats but {n} are needed");
        _d.Download(_logits.Pointer, destination[..(int)n]);
    }

    /// <summary>Greedy sampling on the device: the arg-max token of each chunk's logits (lowest id on ties) into <paramref name="ids"/>.</summary>
    public void SampleGreedy(Span<int> ids)
    {
        if (ids.Length < _finals) throw new ArgumentException($"ids buffer holds {ids.Length} but {_finals} are needed");
        _d.Launch(_k.Argmax, (_finals, 1), 1024, 0, _logits, _c.VocabSize, _c.VocabSize, _ids);
        _d.Download(_ids.Pointer, ids[.._finals]);
    }

    /// <summary>
    /// Top-k sampling on the device: per chunk, softmax at <paramref name="temperature"/> over its <paramref name="k"/> largest
    /// logits (k ≤ 64), then the token where the cumulative probability first exceeds <paramref name="uniforms"/>[i] ∈ [0, 1).
    /// </summary>
    public void SampleTopK(int k, float temperature, ReadOnlySpan<float> uniforms, Span<int> ids)
    {
        if (k is < 1 or > 64) throw new ArgumentOutOfRangeException(nameof(k), k, "top-k on the device supports 1..64");
        if (!(temperature > 0)) throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "must be positive");
        if (uniforms.Length < _finals || ids.Length < _finals) throw new ArgumentException($"need {_finals} uniforms and ids");
        _d.Upload(uniforms[.._finals], _uniforms.Pointer);
        _d.Launch(_k.TopK, (_finals, 1), 1024, 0, _logits, _c.VocabSize, _c.VocabSize, Math.Min(k, _c.VocabSize), temperature, _uniforms, _ids);
        _d.Download(_ids.Pointer, ids[.._finals]);
    }

    /// <summary>Device bytes held by this model (weights, tables, scratch; not KV caches).</summary>
    public long DeviceBytes => _owned.Sum(b => b.Capacity) + Matrices.Sum(m => m.DeviceBytes) + _qa.Bytes;

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var g in _decodeGraphs.Values) _d.DestroyGraph(g);
        _decodeGraphs.Clear();
        foreach (var m in Matrices) m.Dispose();
        foreach (var l in _layers) { l.Qkv?.Dispose(); l.GateUp?.Dispose(); }
        foreach (var b in _owned) b.Dispose();
        _owned.Clear();
        _qa.Dispose();
        _prefill.Dispose();
    }
}
