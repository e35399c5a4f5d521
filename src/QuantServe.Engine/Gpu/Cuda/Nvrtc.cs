using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;

namespace QuantServe.Engine.Gpu.Cuda;

/// <summary>
/// Bindings to NVRTC, the run-time CUDA C++ compiler, and a compile cache: a kernel source compiled for an architecture is
/// stored as a cubin under <see cref="CacheDirectory"/> keyed by SHA-256 of (source, arch, options, NVRTC version), written
/// to a temporary file and renamed so a crashed compile never leaves half a cubin behind.
/// </summary>
public sealed unsafe class Nvrtc
{
    private static readonly object Gate = new();
    private static Nvrtc? _instance;
    private static string? _failure;

    private readonly delegate* unmanaged<int*, int*, int> _version;
    private readonly delegate* unmanaged<nint*, byte*, byte*, int, byte**, byte**, int> _create;
    private readonly delegate* unmanaged<nint*, int> _destroy;
    private readonly delegate* unmanaged<nint, int, byte**, int> _compile;
    private readonly delegate* unmanaged<nint, nuint*, int> _logSize;
    private readonly delegate* unmanaged<nint, byte*, int> _log;
    private readonly delegate* unmanaged<nint, nuint*, int> _cubinSize;
    private readonly delegate* unmanaged<nint, byte*, int> _cubin;
    private readonly delegate* unmanaged<int, byte*> _errorString;

    /// <summary>Library names tried, in order (the toolkit's unversioned link first, then the versioned sonames).</summary>
    public static readonly string[] LibraryNames =
    [
        "libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12", "/usr/local/cuda/lib64/libnvrtc.so",
        "/usr/local/cuda/targets/x86_64-linux/lib/libnvrtc.so",
    ];

    private Nvrtc(nint lib)
    {
        nint Get(string name) => NativeLibrary.TryGetExport(lib, name, out nint p) ? p : throw new CudaException($"libnvrtc has no export {name}");
        _version = (delegate* unmanaged<int*, int*, int>)Get("nvrtcVersion");
        _create = (delegate* unmanaged<nint*, byte*, byte*, int, byte**, byte**, int>)Get("nvrtcCreateProgram");
        _destroy = (delegate* unmanaged<nint*, int>)Get("nvrtcDestroyProgram");
        _compile = (delegate* unmanaged<nint, int, byte**, int>)Get("nvrtcCompileProgram");
        _logSize = (delegate* unmanaged<nint, nuint*, int>)Get("nvrtcGetProgramLogSize");
        _log = (delegate* unmanaged<nint, byte*, int>)Get("nvrtcGetProgramLog");
        _cubinSize = (delegate* unmanaged<nint, nuint*, int>)Get("nvrtcGetCUBINSize");
        _cubin = (delegate* unmanaged<nint, byte*, int>)Get("nvrtcGetCUBIN");
        _errorString = (delegate* unmanaged<int, byte*>)Get("nvrtcGetErrorString");
        int major, minor;
        Check(_version(&major, &minor), "nvrtcVersion");
        Version = $"{major}.{minor}";
    }

    /// <summary>NVRTC's version, <c>major.minor</c>.</summary>
    public string Version { get; }

    /// <summary>Where compiled cubins are cached: <c>$QUANTSERVE_KERNEL_CACHE</c>, else <c>~/.cache/quantserve/kernels</c> (temp folder when there is no home).</summary>
    public static string CacheDirectory
    {
        get
        {
            var env = Environment.GetEnvironmentVariable("QUANTSERVE_KERNEL_CACHE");
            if (!string.IsNullOrEmpty(env)) return env;
            var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
            return string.IsNullOrEmpty(home) ? Path.Combine(Path.GetTempPath(), "quantserve-kernels") : Path.Combine(home, ".cache", "quantserve", "kernels");
        }
    }

    /// <summary>NVRTC, loaded once; null with <paramref name="failure"/> saying why when no library loads.</summary>
    public static Nvrtc? TryLoad(out string? failure)
    {
        lock (Gate)
        {
            if (_instance == null && _failure == null)
            {
                nint lib = 0;
                foreach (var name in LibraryNames)
                    if (NativeLibrary.TryLoad(name, out lib)) break;
                if (lib == 0) _failure = $"no NVRTC: none of {string.Join(", ", LibraryNames)} could be loaded";
                else
                {
                    try { _instance = new Nvrtc(lib); }
                    catch (CudaException e) { _failure = e.Message; }
                }
            }
            failure = _failure;
            return _instance;
        }
    }

    private void Check(int result, string call, string detail = "")
    {
        if (result == 0) return;
        string name = _errorString != null ? Marshal.PtrToStringUTF8((nint)_errorString(result)) ?? $"nvrtcResult {result}" : $"nvrtcResult {result}";
        throw new CudaException(call, result, name, detail);
    }

    /// <summary>Whether a compiled cubin for these inputs is already cached (no compile needed).</summary>
    public bool IsCached(string source, string arch, IReadOnlyList<string> options) => File.Exists(CachePath(source, arch, options));

    private string CachePath(string source, string arch, IReadOnlyList<string> options)
    {
        var key = SHA256.HashData(Encoding.UTF8.GetBytes(string.Join("\n", [source, arch, Version, .. options])));
        return Path.Combine(CacheDirectory, $"{arch}-{Convert.ToHexString(key, 0, 12).ToLowerInvariant()}.cubin");
    }

    /// <summary>
    /// Compiles <paramref name="source"/> for <paramref name="arch"/> (e.g. <c>sm_90</c>) to a cubin, or returns the cached
    /// one. Compile errors throw <see cref="CudaException"/> carrying NVRTC's log.
    /// </summary>
    public byte[] Compile(string source, string name, string arch, IReadOnlyList<string> options, out bool fromCache)
    {
        string path = CachePath(source, arch, options);
        if (File.Exists(path))
        {
            try
            {
                fromCache = true;
                return File.ReadAllBytes(path);
            }
            catch (IOException) { }
        }
        fromCache = false;
        var cubin = CompileUncached(source, name, arch, options);
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            string temp = path + $".{Environment.ProcessId}.tmp";
            File.WriteAllBytes(temp, cubin);
            File.Move(temp, path, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { } // an unwritable cache only costs a recompile
        return cubin;
    }

    /// <summary>Compiles without consulting the cache.</summary>
    public byte[] CompileUncached(string source, string name, string arch, IReadOnlyList<string> options)
    {
        var all = new List<string>(options) { $"--gpu-architecture={arch}" };
        nint prog;
        var src = Encoding.UTF8.GetBytes(source + "\0");
        var nm = Encoding.UTF8.GetBytes(name + "\0");
        fixed (byte* ps = src, pn = nm) Check(_create(&prog, ps, pn, 0, null, null), "nvrtcCreateProgram", name);
        var handles = all.Select(o => GCHandle.Alloc(Encoding.UTF8.GetBytes(o + "\0"), GCHandleType.Pinned)).ToArray();
        try
        {
            var ptrs = stackalloc byte*[handles.Length];
            for (int i = 0; i < handles.Length; i++) ptrs[i] = (byte*)handles[i].AddrOfPinnedObject();
            int rc = _compile(prog, handles.Length, ptrs);
            if (rc != 0)
            {
                nuint size;
                string log = "";
                if (_logSize(prog, &size) == 0 && size > 1)
                {
                    var buffer = new byte[(int)size];
                    fixed (byte* pb = buffer) if (_log(prog, pb) == 0) log = Encoding.UTF8.GetString(buffer, 0, (int)size - 1);
                }
                Check(rc, "nvrtcCompileProgram", $"{name} for {arch}:\n{log}");
            }
            nuint bytes;
            Check(_cubinSize(prog, &bytes), "nvrtcGetCUBINSize");
            var cubin = new byte[(int)bytes];
            fixed (byte* pc = cubin) Check(_cubin(prog, pc), "nvrtcGetCUBIN");
            return cubin;
        }
        finally
        {
            foreach (var h in handles) h.Free();
            _destroy(&prog);
        }
    }
}
