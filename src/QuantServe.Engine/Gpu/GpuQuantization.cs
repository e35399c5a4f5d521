using QuantServe.Engine.Gpu.Cuda;
using QuantServe.Engine.Quantization.Gguf;
using QuantServe.Engine.Quantization.Methods;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Gpu;

/// <summary>
/// The quantizers' heavy loops on a CUDA device (kernels in Kernels/quant.cu):
/// <list type="bullet">
/// <item>k-quant scale searches for Q2_K, Q3_K, Q4_K, Q5_K and Q6_K (reference and importance-weighted), one thread per 256-weight
/// super-block running ggml's candidate search with the CPU's float operations in the CPU's order, so the bytes equal
/// <c>KQuantFormat.QuantizeRow</c>'s;</item>
/// <item>GPTQ: the Hessian <c>Σ x xᵀ</c> (upper 32×32 tiles; exact float products summed in double token by token, the
/// CPU's <see cref="GptqHessian"/> bit for bit),
/// and the column sweep: per 128-column block one warp per row quantizes column by column (grid fit with the 81 clipping
/// candidates split over lanes, error, in-block propagation in double), then the trailing columns get the lazy update
/// <c>W[:, b1:] −= E · U[b0:b1, b1:]</c> as a tiled GEMM that keeps the CPU's summation order. The Cholesky factor of
/// H⁻¹ stays on the CPU.</item>
/// </list>
/// Calls come from any thread; each binds the device's context first and calls are serialized.
/// </summary>
public sealed class GpuQuantization : IKQuantAccelerator, IGptqAccelerator, IDisposable
{
    /// <summary>Threads per block of the k-quant kernels (each thread holds a super-block's levels in local memory).</summary>
    private const int KQuantThreads = 64;

    /// <summary>Rows (warps) per block of the GPTQ sweep kernel.</summary>
    private const int SweepWarps = 4;

    /// <summary>Largest lazy-update block the sweep kernel keeps in shared memory (4 warps × 1536 doubles = 48 KiB).</summary>
    public const int MaxSweepBlock = 1536;

    private readonly CudaDevice _device;
    private readonly GpuKernels _kernels;
    private readonly bool _ownsDevice;
    private readonly Lock _lock = new();
    private readonly nint _q2k, _q3k, _q4k, _q5k, _q6k, _hessian, _sweep, _trailing;
    private DeviceBuffer? _x, _out;

    /// <summary>Uses an open device whose kernels are loaded (e.g. a <see cref="CudaBackend"/>'s); the caller keeps ownership.</summary>
    public GpuQuantization(CudaDevice device, GpuKernels kernels) : this(device, kernels, owns: false) { }

    private GpuQuantization(CudaDevice device, GpuKernels kernels, bool owns)
    {
        _device = device;
        _kernels = kernels;
        _ownsDevice = owns;
        _q2k = device.Function("kq_quantize_q2k");
        _q3k = device.Function("kq_quantize_q3k");
        _q4k = device.Function("kq_quantize_q4k");
        _q5k = device.Function("kq_quantize_q5k");
        _q6k = device.Function("kq_quantize_q6k");
        _hessian = device.Function("gptq_hessian_add");
        _sweep = device.Function("gptq_block");
        _trailing = device.Function("gptq_trailing");
        Name = device.Info.ToString();
    }

    /// <summary>Opens cuda:<paramref name="ordinal"/> and compiles the kernels; throws <see cref="CudaException"/> saying what failed.</summary>
    public static GpuQuantization Open(int ordinal)
    {
        var device = CudaDevice.Open(ordinal);
        try { return new GpuQuantization(device, new GpuKernels(device), owns: true); }
        catch { device.Dispose(); throw; }
    }

    /// <summary>
    /// Resolves <paramref name="selection"/> for the quantizers: <c>cpu</c> → null; <c>cuda:N</c> → that device or an
    /// exception; <c>auto</c> → cuda:0 when a driver, a device and NVRTC are present, else null. <paramref name="log"/>
    /// receives one line saying where the quantizers' heavy loops run and, on fallback, why.
    /// </summary>
    public static GpuQuantization? Select(DeviceSelection selection, Action<string> log)
    {
        switch (selection.Kind)
        {
            case DeviceKind.Cpu:
                log("quantize: heavy loops on the cpu (device=cpu)");
                return null;
            case DeviceKind.Cuda:
            {
                var g = Open(selection.Ordinal);
                log($"quantize: heavy loops on {g.Name}");
                return g;
            }
            default:
                if (CudaDriver.TryLoad(out var why) is not { } driver)
                {
                    log($"quantize: heavy loops on the cpu (no CUDA: {why})");
                    return null;
                }
                try
                {
                    if (driver.DeviceCount == 0)
                    {
                        log("quantize: heavy loops on the cpu (the CUDA driver sees no device)");
                        return null;
                    }
                    var g = Open(0);
                    log($"quantize: heavy loops on {g.Name}");
                    return g;
                }
                catch (CudaException e)
                {
                    log($"quantize: heavy loops on the cpu (CUDA present but unusable: {e.Message})");
                    return null;
                }
        }
    }

    /// <inheritdoc cref="IKQuantAccelerator.Name" />
    public string Name { get; }

    /// <summary>The device.</summary>
    public CudaDevice Device => _device;

    /// <inheritdoc />
    public bool Supports(GgmlType type) => type is GgmlType.Q2_K or GgmlType.Q3_K or GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q6_K;

    /// <inheritdoc />
    public void Quantize(GgmlType type, ReadOnlySpan<float> x, int rows, int cols, ReadOnlySpan<float> importance, Span<byte> destination)
    {
        var (function, blockBytes) = type switch
        {
            GgmlType.Q2_K => (_q2k, 84),
            GgmlType.Q3_K => (_q3k, 110),
            GgmlType.Q4_K => (_q4k, 144),
            GgmlType.Q5_K => (_q5k, 176),
            GgmlType.Q6_K => (_q6k, 210),
            _ => throw new NotSupportedException($"no GPU k-quant search for {type}"),
        };
        if (rows <= 0 || cols <= 0 || cols % 256 != 0) throw new ArgumentException($"{type}: {rows} rows of {cols} do not fit 256-weight blocks");
        if (x.Length < (long)rows * cols) throw new ArgumentException($"{x.Length} values for {rows} × {cols}");
        if (!importance.IsEmpty && importance.Length != cols) throw new ArgumentException($"{importance.Length} importance weights for rows of {cols}");
        long blocks = (long)rows * cols / 256;
        if (blocks > int.MaxValue / 256) throw new ArgumentException($"{rows} × {cols} is too large for one call");
        long outBytes = blocks * blockBytes;
        if (destination.Length < outBytes) throw new ArgumentException($"destination holds {destination.Length} bytes, needs {outBytes}");
        lock (_lock)
        {
            _device.Bind();
            var xb = Ensure(ref _x, (long)rows * cols * 4 + cols * 4L);
            var ob = Ensure(ref _out, outBytes);
            _device.Upload(x[..(rows * cols)], xb.Pointer);
            ulong qw = 0;
            if (!importance.IsEmpty)
            {
                qw = xb.At((long)rows * cols * 4);
                _device.Upload(importance, qw);
            }
            UploadsDone();
            int n = (int)blocks;
            _device.Launch(function, ((n + KQuantThreads - 1) / KQuantThreads, 1), KQuantThreads, 0, xb.Pointer, qw, n, cols / 256, ob.Pointer);
            _device.Download(ob.Pointer, destination[..(int)outBytes]);
        }
    }

    /// <inheritdoc />
    public IGptqHessian CreateHessian(int columns) => new Hessian(this, columns);

    /// <inheritdoc />
    public bool TrySweep(GptqPlan plan, ReadOnlySpan<float> weights, byte[] q, float[] scales, int[] zeros)
    {
        // Static groups (fitted up front on the original weights) and blocks wider than shared memory stay on the CPU.
        if (plan.StaticGroups || plan.Block > MaxSweepBlock) return false;
        int rows = plan.Rows, n = plan.Cols, groups = plan.Groups;
        var w = new double[(long)rows * n];
        var perm = plan.Perm;
        var w32 = weights.ToArray();
        Parallel.For(0, rows, r =>
        {
            for (int i = 0; i < n; i++)
            {
                int c = perm?[i] ?? i;
                w[(long)r * n + i] = plan.Dead[c] ? 0 : w32[r * n + c];
            }
        });
        lock (_lock)
        {
            _device.Bind();
            using var wb = _device.Allocate(w.LongLength * 8);
            using var ub = _device.Allocate((long)n * n * 8);
            using var pb = perm is null ? null : _device.Allocate((long)n * 4);
            using var qb = _device.Allocate((long)rows * n);
            using var sb = _device.Allocate((long)rows * groups * 4);
            using var zb = _device.Allocate((long)rows * groups * 4);
            using var eb = _device.Allocate((long)rows * plan.Block * 8);
            _device.Upload<double>(w, wb.Pointer);
            _device.Upload<double>(plan.U, ub.Pointer);
            if (perm is not null) _device.Upload<int>(perm, pb!.Pointer);
            UploadsDone();
            int maxq = plan.MaxQ, sym = plan.Symmetric ? 1 : 0, mse = plan.MseGrid ? 1 : 0;
            for (int b0 = 0; b0 < n; b0 += plan.Block)
            {
                int b1 = Math.Min(b0 + plan.Block, n);
                int shared = SweepWarps * (b1 - b0) * 8;
                _device.Launch(_sweep, ((rows + SweepWarps - 1) / SweepWarps, 1), SweepWarps * 32, shared,
                    wb.Pointer, ub.Pointer, rows, n, b0, b1, plan.Group, groups, maxq, sym, mse, pb, qb.Pointer, sb.Pointer, zb.Pointer, eb.Pointer);
                if (b1 < n)
                    _device.Launch(_trailing, ((n - b1 + 31) / 32, (rows + 7) / 8), 256, 0, wb.Pointer, ub.Pointer, eb.Pointer, rows, n, b0, b1);
            }
            _device.Download(qb.Pointer, q.AsSpan(0, rows * n));
            _device.Download(sb.Pointer, scales.AsSpan(0, rows * groups));
            _device.Download(zb.Pointer, zeros.AsSpan(0, rows * groups));
        }
        return true;
    }

    /// <summary>
    /// Waits for the uploads just made: a synchronous copy from pageable memory may return before its DMA lands, and the
    /// kernels run on a non-blocking stream that does not wait for the legacy stream's copies.
    /// </summary>
    private unsafe void UploadsDone() => _device.Driver.Check(_device.Driver.cuCtxSynchronize(), "cuCtxSynchronize");

    private DeviceBuffer Ensure(ref DeviceBuffer? buffer, long bytes)
    {
        if (buffer is not null && buffer.Capacity >= bytes) return buffer;
        buffer?.Dispose();
        buffer = _device.Allocate(bytes);
        return buffer;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        lock (_lock)
        {
            _x?.Dispose();
            _out?.Dispose();
            _x = _out = null;
            if (_ownsDevice)
            {
                _kernels.Dispose();
                _device.Dispose();
            }
        }
    }

    /// <summary>
    /// GPTQ's Hessian on the device: each batch of rows is uploaded and every upper-triangle entry of the double n × n
    /// accumulator gains its exact products token by token (the same bits as <see cref="GptqHessian"/>);
    /// <see cref="ToMatrix"/> mirrors and scales by 2/N.
    /// </summary>
    private sealed class Hessian : IGptqHessian
    {
        private readonly GpuQuantization _owner;
        private DeviceBuffer? _sum, _rows;

        public Hessian(GpuQuantization owner, int columns)
        {
            if (columns <= 0) throw new ArgumentOutOfRangeException(nameof(columns));
            _owner = owner;
            Columns = columns;
            lock (owner._lock)
            {
                owner._device.Bind();
                _sum = owner._device.AllocateZeroed((long)columns * columns * 8);
            }
        }

        public int Columns { get; }

        public long Count { get; private set; }

        public void Add(ReadOnlySpan<float> rows, int tokens)
        {
            int n = Columns;
            if (rows.Length < (long)tokens * n) throw new ArgumentException($"{rows.Length} values for {tokens} rows of {n}");
            if (tokens == 0) return;
            ObjectDisposedException.ThrowIf(_sum is null, this);
            var d = _owner._device;
            lock (_owner._lock)
            {
                d.Bind();
                long bytes = (long)tokens * n * 4;
                if (_rows is null || _rows.Capacity < bytes)
                {
                    _rows?.Dispose();
                    _rows = d.Allocate(bytes);
                }
                // The previous batch's kernel may still read the staging buffer.
                d.Synchronize();
                d.Upload(rows[..(tokens * n)], _rows.Pointer);
                _owner.UploadsDone();
                int tiles = (n + 31) / 32;
                d.Launch(_owner._hessian, (tiles, tiles), 256, 0, _rows.Pointer, tokens, n, _sum.Pointer);
            }
            Count += tokens;
        }

        public double[] ToMatrix()
        {
            ObjectDisposedException.ThrowIf(_sum is null, this);
            int n = Columns;
            var h = new double[(long)n * n];
            lock (_owner._lock)
            {
                _owner._device.Bind();
                _owner._device.Download(_sum.Pointer, h.AsSpan());
            }
            double f = Count > 0 ? 2.0 / Count : 0;
            for (int i = 0; i < n; i++)
                for (int j = i; j < n; j++)
                    h[(long)i * n + j] = h[(long)j * n + i] = h[(long)i * n + j] * f;
            return h;
        }

        public void Dispose()
        {
            lock (_owner._lock)
            {
                _rows?.Dispose();
                _sum?.Dispose();
                _rows = _sum = null;
            }
        }
    }
}
