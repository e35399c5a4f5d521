using System.Runtime.InteropServices;
using System.Text;

namespace QuantServe.Engine.Gpu.Cuda;

/// <summary>
/// One CUDA device in use: its primary context made current on the calling thread, one stream every kernel and copy is
/// queued on, a caching memory pool and the kernel module compiled for its architecture. Calls must come from one thread
/// at a time (the owner of the forward pass); <see cref="Bind"/> makes the context current on a new thread.
/// <para>Pool: allocations are rounded to a size class (256 B steps up to 1 MiB, then 2 MiB steps) and freed blocks are kept
/// per class for reuse, so per-step scratch costs no <c>cuMemAlloc</c>; <see cref="AllocatedBytes"/> counts what the
/// pool holds from the driver.</para>
/// </summary>
public sealed unsafe class CudaDevice : IDisposable
{
    private readonly CudaDriver _cu;
    private readonly nint _context;
    private readonly int _device;
    private readonly Dictionary<long, Stack<ulong>> _free = [];
    private readonly Dictionary<string, nint> _functions = [];
    private nint _module;
    private bool _disposed;

    private CudaDevice(CudaDriver cu, int ordinal)
    {
        _cu = cu;
        Info = cu.Describe(ordinal);
        int dev;
        cu.Check(cu.cuDeviceGet(&dev, ordinal), "cuDeviceGet", $"device {ordinal}");
        _device = dev;
        nint ctx;
        cu.Check(cu.cuDevicePrimaryCtxRetain(&ctx, dev), "cuDevicePrimaryCtxRetain", Info.ToString());
        _context = ctx;
        Bind();
        nint stream;
        cu.Check(cu.cuStreamCreate(&stream, 1 /* CU_STREAM_NON_BLOCKING */), "cuStreamCreate");
        Stream = stream;
    }

    /// <summary>Opens device <paramref name="ordinal"/>; throws <see cref="CudaException"/> saying why it cannot.</summary>
    public static CudaDevice Open(int ordinal)
    {
        var cu = CudaDriver.TryLoad(out var failure) ?? throw new CudaException(failure ?? "no CUDA driver");
        int count = cu.DeviceCount;
        if (ordinal < 0 || ordinal >= count)
            throw new CudaException($"cuda:{ordinal} does not exist ({count} CUDA device{(count == 1 ? "" : "s")} visible)");
        return new CudaDevice(cu, ordinal);
    }

    /// <summary>The driver bindings.</summary>
    public CudaDriver Driver => _cu;

    /// <summary>What the device is.</summary>
    public CudaDeviceInfo Info { get; }

    /// <summary>The stream all work is queued on.</summary>
    public nint Stream { get; }

    /// <summary>Bytes currently reserved from the driver by the pool (in use plus cached).</summary>
    public long AllocatedBytes { get; private set; }

    /// <summary>Bytes handed out and not yet returned.</summary>
    public long InUseBytes { get; private set; }

    /// <summary>Highest <see cref="InUseBytes"/> so far.</summary>
    public long PeakInUseBytes { get; private set; }

    /// <summary>Makes this device's context current on the calling thread.</summary>
    public void Bind() => _cu.Check(_cu.cuCtxSetCurrent(_context), "cuCtxSetCurrent");

    /// <summary>Free and total device memory as the driver reports them.</summary>
    public (long Free, long Total) MemoryInfo()
    {
        nuint free, total;
        _cu.Check(_cu.cuMemGetInfo(&free, &total), "cuMemGetInfo");
        return ((long)free, (long)total);
    }

    private static long SizeClass(long bytes)
    {
        if (bytes <= 0) return 256;
        if (bytes <= 1 << 20) return (bytes + 255) & ~255L;
        return (bytes + (2 << 20) - 1) & ~((2L << 20) - 1);
    }

    /// <summary>Allocates <paramref name="bytes"/> of device memory (contents undefined) from the pool.</summary>
    public DeviceBuffer Allocate(long bytes)
    {
        long cls = SizeClass(bytes);
        ulong p;
        if (_free.TryGetValue(cls, out var stack) && stack.Count > 0) p = stack.Pop();
        else
        {
            int rc = _cu.cuMemAlloc(&p, (nuint)cls);
            if (rc == 2 /* CUDA_ERROR_OUT_OF_MEMORY */)
            {
                Trim();
                rc = _cu.cuMemAlloc(&p, (nuint)cls);
            }
            _cu.Check(rc, "cuMemAlloc", $"{cls:N0} bytes on {Info} ({AllocatedBytes:N0} already held by QuantServe)");
            AllocatedBytes += cls;
        }
        InUseBytes += cls;
        PeakInUseBytes = Math.Max(PeakInUseBytes, InUseBytes);
        return new DeviceBuffer(this, p, bytes, cls);
    }

    /// <summary>Allocates and zero-fills.</summary>
    public DeviceBuffer AllocateZeroed(long bytes)
    {
        var b = Allocate(bytes);
        _cu.Check(_cu.cuMemsetD8Async(b.Pointer, 0, (nuint)b.Capacity, Stream), "cuMemsetD8Async");
        return b;
    }

    internal void Release(ulong pointer, long capacity)
    {
        if (_disposed) return;
        InUseBytes -= capacity;
        if (!_free.TryGetValue(capacity, out var stack)) _free[capacity] = stack = new Stack<ulong>();
        stack.Push(pointer);
    }

    /// <summary>Returns every cached (free) block to the driver.</summary>
    public void Trim()
    {
        Synchronize();
        foreach (var (cls, stack) in _free)
            while (stack.Count > 0)
            {
                _cu.cuMemFree(stack.Pop());
                AllocatedBytes -= cls;
            }
    }

    /// <summary>Copies host memory to the device (synchronous with respect to the host buffer).</summary>
    public void Upload<T>(ReadOnlySpan<T> source, ulong destination) where T : unmanaged
    {
        fixed (T* p = source)
            _cu.Check(_cu.cuMemcpyHtoD(destination, p, (nuint)(source.Length * sizeof(T))), "cuMemcpyHtoD", $"{source.Length * sizeof(T):N0} bytes");
    }

    /// <summary>Copies <paramref name="bytes"/> from host address <paramref name="source"/> to the device.</summary>
    public void Upload(void* source, ulong destination, long bytes)
        => _cu.Check(_cu.cuMemcpyHtoD(destination, source, (nuint)bytes), "cuMemcpyHtoD", $"{bytes:N0} bytes");

    /// <summary>Waits for the stream, then copies device memory to the host.</summary>
    public void Download<T>(ulong source, Span<T> destination) where T : unmanaged
    {
        Synchronize();
        fixed (T* p = destination)
            _cu.Check(_cu.cuMemcpyDtoH(p, source, (nuint)(destination.Length * sizeof(T))), "cuMemcpyDtoH", $"{destination.Length * sizeof(T):N0} bytes");
    }

    /// <summary>Queues a device-to-device copy.</summary>
    public void Copy(ulong source, ulong destination, long bytes)
        => _cu.Check(_cu.cuMemcpyDtoDAsync(destination, source, (nuint)bytes, Stream), "cuMemcpyDtoDAsync");

    /// <summary>Waits until the stream has finished all queued work.</summary>
    public void Synchronize() => _cu.Check(_cu.cuStreamSynchronize(Stream), "cuStreamSynchronize", "a kernel queued earlier failed");

    /// <summary>Whether a module is loaded.</summary>
    public bool HasModule => _module != 0;

    /// <summary>Loads the compiled kernels (a cubin); replaces any module loaded before.</summary>
    public void LoadModule(byte[] cubin)
    {
        if (_module != 0) { _cu.cuModuleUnload(_module); _functions.Clear(); }
        nint m;
        fixed (byte* p = cubin) _cu.Check(_cu.cuModuleLoadData(&m, p), "cuModuleLoadData", $"{cubin.Length:N0}-byte cubin for {Info.Arch}");
        _module = m;
    }

    /// <summary>The kernel named <paramref name="name"/> in the loaded module.</summary>
    public nint Function(string name)
    {
        if (_functions.TryGetValue(name, out var f)) return f;
        if (_module == 0) throw new InvalidOperationException("no kernel module loaded");
        var bytes = Encoding.ASCII.GetBytes(name + "\0");
        fixed (byte* p = bytes) _cu.Check(_cu.cuModuleGetFunction(&f, _module, p), "cuModuleGetFunction", name);
        _functions[name] = f;
        return f;
    }

    /// <summary>Queues kernel <paramref name="function"/> on the stream with the given grid, block and arguments.</summary>
    public void Launch(nint function, (int X, int Y) grid, int block, int sharedBytes, params ReadOnlySpan<KernelArg> args)
    {
        var slots = stackalloc ulong[args.Length];
        var ptrs = stackalloc void*[args.Length];
        for (int i = 0; i < args.Length; i++) { slots[i] = args[i].Bits; ptrs[i] = &slots[i]; }
        _cu.Check(_cu.cuLaunchKernel(function, (uint)grid.X, (uint)grid.Y, 1, (uint)block, 1, 1, (uint)sharedBytes, Stream, ptrs, null),
            "cuLaunchKernel", $"grid {grid.X}×{grid.Y}, block {block}");
    }

    /// <summary>Queues a kernel whose arguments include a by-value struct: <paramref name="args"/> are pointers to each argument.</summary>
    public void LaunchRaw(nint function, (int X, int Y) grid, int block, int sharedBytes, void** args)
        => _cu.Check(_cu.cuLaunchKernel(function, (uint)grid.X, (uint)grid.Y, 1, (uint)block, 1, 1, (uint)sharedBytes, Stream, args, null),
            "cuLaunchKernel", $"grid {grid.X}×{grid.Y}, block {block}");

    /// <summary>
    /// Whether kernels can be launched with programmatic dependent launch (Hopper or newer, a driver with cuLaunchKernelEx):
    /// the next kernel on the stream is scheduled while this one drains and waits in <c>griddepcontrol.wait</c>.
    /// </summary>
    public bool SupportsProgrammaticLaunch => _cu.cuLaunchKernelEx != null && Info.Major >= 9;

    // CUlaunchConfig and one CUlaunchAttribute (id, 4 bytes of padding, a 64-byte value union), as cuda.h lays them out.
    [StructLayout(LayoutKind.Sequential)]
    private struct LaunchConfig
    {
        public uint GridX, GridY, GridZ, BlockX, BlockY, BlockZ, SharedBytes;
        public nint Stream;
        public LaunchAttribute* Attributes;
        public uint AttributeCount;
    }

    [StructLayout(LayoutKind.Explicit, Size = 72)]
    private struct LaunchAttribute
    {
        [FieldOffset(0)] public int Id;
        [FieldOffset(8)] public int Value;
    }

    private const int ProgrammaticStreamSerialization = 6; // CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION

    /// <summary>
    /// Queues a kernel (arguments as for <see cref="LaunchRaw"/>) that may start before the previous kernel on the stream
    /// finishes: the kernel must execute <c>griddepcontrol.wait</c> before touching memory the previous kernel writes (every
    /// QuantServe kernel does, through PDL_ENTER). Falls back to <see cref="LaunchRaw"/> where unsupported.
    /// </summary>
    public void LaunchRawProgrammatic(nint function, (int X, int Y) grid, int block, int sharedBytes, void** args)
    {
        if (!SupportsProgrammaticLaunch) { LaunchRaw(function, grid, block, sharedBytes, args); return; }
        var attribute = new LaunchAttribute { Id = ProgrammaticStreamSerialization, Value = 1 };
        var config = new LaunchConfig
        {
            GridX = (uint)grid.X, GridY = (uint)grid.Y, GridZ = 1, BlockX = (uint)block, BlockY = 1, BlockZ = 1,
            SharedBytes = (uint)sharedBytes, Stream = Stream, Attributes = &attribute, AttributeCount = 1,
        };
        _cu.Check(_cu.cuLaunchKernelEx(&config, function, args, null), "cuLaunchKernelEx", $"grid {grid.X}×{grid.Y}, block {block}, programmatic");
    }

    /// <summary><see cref="Launch"/> with programmatic dependent launch (see <see cref="LaunchRawProgrammatic"/>).</summary>
    public void LaunchProgrammatic(nint function, (int X, int Y) grid, int block, int sharedBytes, params ReadOnlySpan<KernelArg> args)
    {
        var slots = stackalloc ulong[args.Length];
        var ptrs = stackalloc void*[args.Length];
        for (int i = 0; i < args.Length; i++) { slots[i] = args[i].Bits; ptrs[i] = &slots[i]; }
        LaunchRawProgrammatic(function, grid, block, sharedBytes, ptrs);
    }

    /// <summary>
    /// Records the kernels <paramref name="work"/> queues (no host copies or waits inside) into a CUDA graph and returns the
    /// instantiated executable graph; replaying it with <see cref="LaunchGraph"/> costs one launch instead of one per kernel.
    /// </summary>
    public nint Capture(Action work)
    {
        _cu.Check(_cu.cuStreamBeginCapture(Stream, 2 /* CU_STREAM_CAPTURE_MODE_RELAXED */), "cuStreamBeginCapture");
        nint graph = 0;
        try { work(); }
        finally { _cu.Check(_cu.cuStreamEndCapture(Stream, &graph), "cuStreamEndCapture"); }
        try
        {
            nint exec;
            _cu.Check(_cu.cuGraphInstantiateWithFlags(&exec, graph, 0), "cuGraphInstantiateWithFlags");
            return exec;
        }
        finally { _cu.cuGraphDestroy(graph); }
    }

    /// <summary>Queues an executable graph from <see cref="Capture"/> on the stream.</summary>
    public void LaunchGraph(nint exec) => _cu.Check(_cu.cuGraphLaunch(exec, Stream), "cuGraphLaunch");

    /// <summary>Frees an executable graph.</summary>
    public void DestroyGraph(nint exec) => _cu.cuGraphExecDestroy(exec);

    /// <summary>Milliseconds the stream takes to run <paramref name="work"/> (CUDA events around it).</summary>
    public double Time(Action work)
    {
        nint a, b;
        _cu.Check(_cu.cuEventCreate(&a, 0), "cuEventCreate");
        _cu.Check(_cu.cuEventCreate(&b, 0), "cuEventCreate");
        try
        {
            _cu.Check(_cu.cuEventRecord(a, Stream), "cuEventRecord");
            work();
            _cu.Check(_cu.cuEventRecord(b, Stream), "cuEventRecord");
            _cu.Check(_cu.cuEventSynchronize(b), "cuEventSynchronize");
            float ms;
            _cu.Check(_cu.cuEventElapsedTime(&ms, a, b), "cuEventElapsedTime");
            return ms;
        }
        finally { _cu.cuEventDestroy(a); _cu.cuEventDestroy(b); }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_disposed) return;
        try { Synchronize(); } catch (CudaException) { }
        Trim();
        _disposed = true;
        if (_module != 0) _cu.cuModuleUnload(_module);
        _cu.cuStreamDestroy(Stream);
        _cu.cuDevicePrimaryCtxRelease(_device);
    }
}
