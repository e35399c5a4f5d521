using System.Runtime.InteropServices;
using System.Text;

namespace QuantServe.Engine.Gpu.Cuda;

/// <summary>
/// Bindings to the CUDA driver API in <c>libcuda.so.1</c>, resolved at run time with <see cref="NativeLibrary"/> (so a
/// machine without the driver loads the engine fine and <see cref="TryLoad"/> reports why). Every call goes through
/// <see cref="Check"/>, which turns a non-zero <c>CUresult</c> into a <see cref="CudaException"/> naming the call.
/// </summary>
public sealed unsafe class CudaDriver
{
    private static readonly object Gate = new();
    private static CudaDriver? _instance;
    private static string? _failure;

    internal delegate* unmanaged<uint, int> cuInit;
    internal delegate* unmanaged<int*, int> cuDriverGetVersion;
    internal delegate* unmanaged<int*, int> cuDeviceGetCount;
    internal delegate* unmanaged<int*, int, int> cuDeviceGet;
    internal delegate* unmanaged<byte*, int, int, int> cuDeviceGetName;
    internal delegate* unmanaged<int*, int, int, int> cuDeviceGetAttribute;
    internal delegate* unmanaged<nuint*, int, int> cuDeviceTotalMem;
    internal delegate* unmanaged<nint*, int, int> cuDevicePrimaryCtxRetain;
    internal delegate* unmanaged<int, int> cuDevicePrimaryCtxRelease;
    internal delegate* unmanaged<nint, int> cuCtxSetCurrent;
    internal delegate* unmanaged<int> cuCtxSynchronize;
    internal delegate* unmanaged<nuint*, nuint*, int> cuMemGetInfo;
    internal delegate* unmanaged<ulong*, nuint, int> cuMemAlloc;
    internal delegate* unmanaged<ulong, int> cuMemFree;
    internal delegate* unmanaged<ulong, void*, nuint, int> cuMemcpyHtoD;
    internal delegate* unmanaged<void*, ulong, nuint, int> cuMemcpyDtoH;
    internal delegate* unmanaged<ulong, void*, nuint, nint, int> cuMemcpyHtoDAsync;
    internal delegate* unmanaged<void*, ulong, nuint, nint, int> cuMemcpyDtoHAsync;
    internal delegate* unmanaged<ulong, ulong, nuint, nint, int> cuMemcpyDtoDAsync;
    internal delegate* unmanaged<ulong, byte, nuint, nint, int> cuMemsetD8Async;
    internal delegate* unmanaged<ulong, nuint, uint, nuint, nuint, nint, int> cuMemsetD2D32Async;
    internal delegate* unmanaged<nint*, void*, int> cuModuleLoadData;
    internal delegate* unmanaged<nint, int> cuModuleUnload;
    internal delegate* unmanaged<nint*, nint, byte*, int> cuModuleGetFunction;
    internal delegate* unmanaged<nint, int, int, int> cuFuncSetAttribute;
    internal delegate* unmanaged<nint, uint, uint, uint, uint, uint, uint, uint, nint, void**, void**, int> cuLaunchKernel;
    /// <summary>cuLaunchKernelEx (CUDA 12+), null when the driver lacks it.</summary>
    internal delegate* unmanaged<void*, nint, void**, void**, int> cuLaunchKernelEx;
    internal delegate* unmanaged<nint*, uint, int> cuStreamCreate;
    internal delegate* unmanaged<nint, int> cuStreamDestroy;
    internal delegate* unmanaged<nint, int> cuStreamSynchronize;
    internal delegate* unmanaged<nint*, uint, int> cuEventCreate;
    internal delegate* unmanaged<nint, int> cuEventDestroy;
    internal delegate* unmanaged<nint, nint, int> cuEventRecord;
    internal delegate* unmanaged<nint, int> cuEventSynchronize;
    internal delegate* unmanaged<float*, nint, nint, int> cuEventElapsedTime;
    internal delegate* unmanaged<nint, int, int> cuStreamBeginCapture;
    internal delegate* unmanaged<nint, nint*, int> cuStreamEndCapture;
    internal delegate* unmanaged<nint*, nint, ulong, int> cuGraphInstantiateWithFlags;
    internal delegate* unmanaged<nint, nint, int> cuGraphLaunch;
    internal delegate* unmanaged<nint, int> cuGraphExecDestroy;
    internal delegate* unmanaged<nint, int> cuGraphDestroy;
    internal delegate* unmanaged<int, byte**, int> cuGetErrorName;
    internal delegate* unmanaged<int, byte**, int> cuGetErrorString;

    private CudaDriver(nint lib)
    {
        nint Get(string name)
        {
            if (!NativeLibrary.TryGetExport(lib, name, out nint p))
                throw new CudaException($"libcuda.so.1 has no export {name} (driver too old?)");
            return p;
        }
        cuInit = (delegate* unmanaged<uint, int>)Get("cuInit");
        cuDriverGetVersion = (delegate* unmanaged<int*, int>)Get("cuDriverGetVersion");
        cuDeviceGetCount = (delegate* unmanaged<int*, int>)Get("cuDeviceGetCount");
        cuDeviceGet = (delegate* unmanaged<int*, int, int>)Get("cuDeviceGet");
        cuDeviceGetName = (delegate* unmanaged<byte*, int, int, int>)Get("cuDeviceGetName");
        cuDeviceGetAttribute = (delegate* unmanaged<int*, int, int, int>)Get("cuDeviceGetAttribute");
        cuDeviceTotalMem = (delegate* unmanaged<nuint*, int, int>)Get("cuDeviceTotalMem_v2");
        cuDevicePrimaryCtxRetain = (delegate* unmanaged<nint*, int, int>)Get("cuDevicePrimaryCtxRetain");
        cuDevicePrimaryCtxRelease = (delegate* unmanaged<int, int>)Get("cuDevicePrimaryCtxRelease_v2");
        cuCtxSetCurrent = (delegate* unmanaged<nint, int>)Get("cuCtxSetCurrent");
        cuCtxSynchronize = (delegate* unmanaged<int>)Get("cuCtxSynchronize");
        cuMemGetInfo = (delegate* unmanaged<nuint*, nuint*, int>)Get("cuMemGetInfo_v2");
        cuMemAlloc = (delegate* unmanaged<ulong*, nuint, int>)Get("cuMemAlloc_v2");
        cuMemFree = (delegate* unmanaged<ulong, int>)Get("cuMemFree_v2");
        cuMemcpyHtoD = (delegate* unmanaged<ulong, void*, nuint, int>)Get("cuMemcpyHtoD_v2");
        cuMemcpyDtoH = (delegate* unmanaged<void*, ulong, nuint, int>)Get("cuMemcpyDtoH_v2");
        cuMemcpyHtoDAsync = (delegate* unmanaged<ulong, void*, nuint, nint, int>)Get("cuMemcpyHtoDAsync_v2");
        cuMemcpyDtoHAsync = (delegate* unmanaged<void*, ulong, nuint, nint, int>)Get("cuMemcpyDtoHAsync_v2");
        cuMemcpyDtoDAsync = (delegate* unmanaged<ulong, ulong, nuint, nint, int>)Get("cuMemcpyDtoDAsync_v2");
        cuMemsetD8Async = (delegate* unmanaged<ulong, byte, nuint, nint, int>)Get("cuMemsetD8Async");
        cuMemsetD2D32Async = (delegate* unmanaged<ulong, nuint, uint, nuint, nuint, nint, int>)Get("cuMemsetD2D32Async");
        cuModuleLoadData = (delegate* unmanaged<nint*, void*, int>)Get("cuModuleLoadData");
        cuModuleUnload = (delegate* unmanaged<nint, int>)Get("cuModuleUnload");
        cuModuleGetFunction = (delegate* unmanaged<nint*, nint, byte*, int>)Get("cuModuleGetFunction");
        cuFuncSetAttribute = (delegate* unmanaged<nint, int, int, int>)Get("cuFuncSetAttribute");
        cuLaunchKernel = (delegate* unmanaged<nint, uint, uint, uint, uint, uint, uint, uint, nint, void**, void**, int>)Get("cuLaunchKernel");
        cuLaunchKernelEx = NativeLibrary.TryGetExport(lib, "cuLaunchKernelEx", out nint launchEx) ? (delegate* unmanaged<void*, nint, void**, void**, int>)launchEx : null;
        cuStreamCreate = (delegate* unmanaged<nint*, uint, int>)Get("cuStreamCreate");
        cuStreamDestroy = (delegate* unmanaged<nint, int>)Get("cuStreamDestroy_v2");
        cuStreamSynchronize = (delegate* unmanaged<nint, int>)Get("cuStreamSynchronize");
        cuEventCreate = (delegate* unmanaged<nint*, uint, int>)Get("cuEventCreate");
        cuEventDestroy = (delegate* unmanaged<nint, int>)Get("cuEventDestroy_v2");
        cuEventRecord = (delegate* unmanaged<nint, nint, int>)Get("cuEventRecord");
        cuEventSynchronize = (delegate* unmanaged<nint, int>)Get("cuEventSynchronize");
        cuEventElapsedTime = (delegate* unmanaged<float*, nint, nint, int>)(NativeLibrary.TryGetExport(lib, "cuEventElapsedTime_v2", out nint elapsed)
            ? elapsed : Get("cuEventElapsedTime"));
        cuStreamBeginCapture = (delegate* unmanaged<nint, int, int>)Get("cuStreamBeginCapture_v2");
        cuStreamEndCapture = (delegate* unmanaged<nint, nint*, int>)Get("cuStreamEndCapture");
        cuGraphInstantiateWithFlags = (delegate* unmanaged<nint*, nint, ulong, int>)Get("cuGraphInstantiateWithFlags");
        cuGraphLaunch = (delegate* unmanaged<nint, nint, int>)Get("cuGraphLaunch");
        cuGraphExecDestroy = (delegate* unmanaged<nint, int>)Get("cuGraphExecDestroy");
        cuGraphDestroy = (delegate* unmanaged<nint, int>)Get("cuGraphDestroy");
        cuGetErrorName = (delegate* unmanaged<int, byte**, int>)Get("cuGetErrorName");
        cuGetErrorString = (delegate* unmanaged<int, byte**, int>)Get("cuGetErrorString");
    }

    /// <summary>The library names tried, in order.</summary>
    public static readonly string[] LibraryNames = ["libcuda.so.1", "libcuda.so", "nvcuda.dll"];

    /// <summary>
    /// The driver, loaded and initialised once per process; null when it cannot be (no library, no device, driver error),
    /// with <paramref name="failure"/> saying why — the normal case on CI machines.
    /// </summary>
    public static CudaDriver? TryLoad(out string? failure)
    {
        lock (Gate)
        {
            if (_instance == null && _failure == null)
            {
                try { _instance = Load(); }
                catch (Exception e) when (e is CudaException or DllNotFoundException or EntryPointNotFoundException)
                {
                    _failure = e.Message;
                }
            }
            failure = _failure;
            return _instance;
        }
    }

    private static CudaDriver Load()
    {
        nint lib = 0;
        foreach (var name in LibraryNames)
            if (NativeLibrary.TryLoad(name, out lib)) break;
        if (lib == 0) throw new CudaException($"no CUDA driver: none of {string.Join(", ", LibraryNames)} could be loaded");
        var driver = new CudaDriver(lib);
        driver.Check(driver.cuInit(0), "cuInit");
        return driver;
    }

    /// <summary>The driver's CUDA version as major × 1000 + minor × 10.</summary>
    public int Version
    {
        get
        {
            int v;
            Check(cuDriverGetVersion(&v), "cuDriverGetVersion");
            return v;
        }
    }

    /// <summary>Throws <see cref="CudaException"/> when <paramref name="result"/> is not CUDA_SUCCESS.</summary>
    public void Check(int result, string call, string detail = "")
    {
        if (result == 0) return;
        string name = $"CUresult {result}", text = "";
        byte* p;
        if (cuGetErrorName != null && cuGetErrorName(result, &p) == 0 && p != null) name = Marshal.PtrToStringUTF8((nint)p) ?? name;
        if (cuGetErrorString != null && cuGetErrorString(result, &p) == 0 && p != null) text = Marshal.PtrToStringUTF8((nint)p) ?? "";
        throw new CudaException(call, result, name, string.Join("; ", new[] { text, detail }.Where(s => s.Length > 0)));
    }

    /// <summary>Devices visible to this process.</summary>
    public int DeviceCount
    {
        get
        {
            int n;
            Check(cuDeviceGetCount(&n), "cuDeviceGetCount");
            return n;
        }
    }

    /// <summary>Describes device <paramref name="ordinal"/>.</summary>
    public CudaDeviceInfo Describe(int ordinal)
    {
        int devOut;
        Check(cuDeviceGet(&devOut, ordinal), "cuDeviceGet", $"device {ordinal}");
        int dev = devOut;
        var name = stackalloc byte[256];
        Check(cuDeviceGetName(name, 256, dev), "cuDeviceGetName");
        nuint total;
        Check(cuDeviceTotalMem(&total, dev), "cuDeviceTotalMem");
        int Attr(int a)
        {
            int v;
            Check(cuDeviceGetAttribute(&v, a, dev), "cuDeviceGetAttribute", $"attribute {a}");
            return v;
        }
        // CUdevice_attribute: 75/76 compute capability, 16 SM count, 36 memory clock (kHz), 37 bus width (bits), 97 max opt-in shared memory per block.
        int clockKHz = Attr(36), busBits = Attr(37);
        return new CudaDeviceInfo(ordinal, Marshal.PtrToStringUTF8((nint)name) ?? "", Attr(75), Attr(76), Attr(16), (long)total,
            2.0 * clockKHz * 1e3 * busBits / 8 / 1e9, Attr(97));
    }
}

/// <summary>One CUDA device: compute capability, SMs, memory and the theoretical DRAM bandwidth the driver reports
/// (2 × memory clock × bus width — double data rate).</summary>
public sealed record CudaDeviceInfo(int Ordinal, string Name, int Major, int Minor, int Multiprocessors, long TotalMemory,
    double ReportedBandwidthGBs, int MaxSharedPerBlockOptin)
{
    /// <summary>The architecture NVRTC compiles for, e.g. <c>sm_90</c>.</summary>
    public string Arch => $"sm_{Major}{Minor}";

    /// <inheritdoc />
    public override string ToString() => $"cuda:{Ordinal} {Name} ({Arch}, {Multiprocessors} SMs, {TotalMemory / (1 << 20)} MiB)";
}
