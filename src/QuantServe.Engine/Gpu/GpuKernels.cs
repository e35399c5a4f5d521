using System.Reflection;
using QuantServe.Engine.Gpu.Cuda;
using QuantServe.Engine.Quantization.Formats;

namespace QuantServe.Engine.Gpu;

/// <summary>
/// The CUDA C kernels embedded in the engine (Gpu/Kernels/*.cu), compiled with NVRTC for the device's architecture
/// (cached on disk, see <see cref="Nvrtc"/>) and loaded into a <see cref="CudaDevice"/>, with typed launchers.
/// </summary>
public sealed unsafe class GpuKernels : IDisposable
{
    /// <summary>Embedded kernel files, in compile order.</summary>
    public static readonly string[] SourceFiles = ["gemv.cu", "gemvq.cu", "ops.cu", "gemm.cu", "prefill_attention.cu"];

    /// <summary>NVRTC options used for every compile.</summary>
    public static readonly string[] CompileOptions = ["--std=c++17", "-default-device", "--restrict"];

    /// <summary>Warps (rows) per block of the GEMV kernels.</summary>
    public const int GemvWarps = 4;

    private readonly CudaDevice _device;
    private readonly Dictionary<(GpuKernelKind, int), nint> _gemv = [];
    private readonly Dictionary<(GpuKernelKind, int), nint> _gemvq = [];
    private readonly DeviceBuffer _nf4, _fp4;

    /// <summary>The concatenated kernel source.</summary>
    public static string Source()
    {
        var asm = typeof(GpuKernels).Assembly;
        return string.Join("\n", SourceFiles.Select(f =>
        {
            using var s = asm.GetManifestResourceStream($"QuantServe.Gpu.{f}") ?? throw new InvalidOperationException($"kernel source {f} is not embedded");
            using var r = new StreamReader(s);
            return $"// ---- {f} ----\n" + r.ReadToEnd();
        }));
    }

    /// <summary>Compiles (or loads the cached cubin) and loads the kernels into <paramref name="device"/>.</summary>
    public GpuKernels(CudaDevice device)
    {
        _device = device;
        var nvrtc = Nvrtc.TryLoad(out var failure) ?? throw new CudaException(failure ?? "no NVRTC");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var cubin = nvrtc.Compile(Source(), "quantserve.cu", device.Info.Arch, CompileOptions, out bool cached);
        CompileSeconds = clock.Elapsed.TotalSeconds;
        FromCache = cached;
        NvrtcVersion = nvrtc.Version;
        device.LoadModule(cubin);
        foreach (GpuKernelKind kind in Enum.GetValues<GpuKernelKind>())
            foreach (int nb in (int[])[1, 4, 16])
                _gemv[(kind, nb)] = device.Function($"gemv_{GemvName(kind)}_{nb}");
        foreach (var kind in IntegerDotKinds)
            foreach (int nb in (int[])[1, 4, 16])
                _gemvq[(kind, nb)] = device.Function($"gemvq_{GemvName(kind)}_{nb}");
        QuantizeQ8 = device.Function("quantize_q8");
        Embed = device.Function("embed");
        RmsNorm = device.Function("rmsnorm");
        AddBias = device.Function("add_bias");
        SwiGlu = device.Function("swiglu");
        RopeStore = device.Function("rope_store");
        Attention = device.Function("attention");
        Argmax = device.Function("argmax_rows");
        TopK = device.Function("topk_sample");
        Gemm = GpuGemm.Supports(device.Info.Major) ? new GpuGemm(device) : null;
        _nf4 = device.Allocate(64);
        device.Upload(CodebookFormat.Nf4.Values, _nf4.Pointer);
        _fp4 = device.Allocate(64);
        device.Upload(CodebookFormat.Fp4.Values, _fp4.Pointer);
    }

    /// <summary>Kinds with an integer-dot (dp4a) kernel over int8-quantized activations.</summary>
    public static readonly GpuKernelKind[] IntegerDotKinds = [GpuKernelKind.Q8_0, GpuKernelKind.Q4_0, GpuKernelKind.Q4_K, GpuKernelKind.Int4];

    /// <summary>Whether <paramref name="w"/> is read by an integer-dot kernel (and so wants quantized activations).</summary>
    public static bool UsesIntegerDot(GpuMatrix w) => Array.IndexOf(IntegerDotKinds, w.Kind) >= 0;

    private static string GemvName(GpuKernelKind kind) => kind switch
    {
        GpuKernelKind.Codebook => "nf4",
        _ => kind.ToString().ToLowerInvariant(),
    };

    /// <summary>Seconds the compile (or cache read) took.</summary>
    public double CompileSeconds { get; }
    /// <summary>Whether the cubin came from the disk cache.</summary>
    public bool FromCache { get; }
    /// <summary>NVRTC version used.</summary>
    public string NvrtcVersion { get; }

    internal nint QuantizeQ8 { get; }
    internal nint Embed { get; }
    internal nint RmsNorm { get; }
    internal nint AddBias { get; }
    internal nint SwiGlu { get; }
    internal nint RopeStore { get; }
    internal nint Attention { get; }
    internal nint Argmax { get; }
    internal nint TopK { get; }

    /// <summary>The tensor-core GEMM (null below sm_80, where every product stays on the GEMV kernels).</summary>
    public GpuGemm? Gemm { get; }

    /// <summary>Products of at least this many tokens run on <see cref="Gemm"/> (default 16; <see cref="int.MaxValue"/> keeps the GEMV kernels).</summary>
    public int GemmMinTokens { get; set; } = 16;

    /// <summary>Whether products of <paramref name="batch"/> tokens run on the GEMM (and so need no int8 activations).</summary>
    public bool UsesGemm(int batch) => Gemm != null && batch >= GemmMinTokens;

    /// <summary>
    /// Queues <c>y[b·ys + r] (+)= Σ_c W[r,c]·x[b·xs + c]</c> for every row r and b in [0, batch); batches of
    /// <see cref="GemmMinTokens"/> or more run on the tensor-core <see cref="Gemm"/> where there is one. Otherwise the batch is cut into
    /// tiles of 16 (4 or 1 for small remainders), each tile reading the weights once. <paramref name="accumulate"/> adds to y
    /// (a fused residual add). x rows must be zero-padded to whole units (the model pads to 256).
    /// </summary>
    public void Gemv(GpuMatrix w, ulong x, int xs, ulong y, int ys, int batch, bool accumulate, GpuActivations? quantized = null)
    {
        if (UsesGemm(batch) && GpuGemm.Handles(w.Kind))
        {
            Gemm!.Run(w, x, xs, y, ys, batch, accumulate, w.Format == CodebookFormat.Fp4.Name ? _fp4.Pointer : _nf4.Pointer);
            return;
        }
        if (quantized != null && UsesIntegerDot(w))
        {
            GemvQ(w, quantized, y, ys, batch, accumulate);
            return;
        }
        var mat = w.Mat;
        int rows = w.Rows, add = accumulate ? 1 : 0;
        ulong lut = w.Format == CodebookFormat.Fp4.Name ? _fp4.Pointer : _nf4.Pointer;
        int grid = (rows + GemvWarps - 1) / GemvWarps;
        void** args = stackalloc void*[9];
        for (int b0 = 0; b0 < batch;)
        {
            int left = batch - b0, nb = left >= 16 ? 16 : left > 1 ? (left > 4 ? 16 : 4) : 1;
            int take = Math.Min(nb, left);
            ulong xp = x + (ulong)((long)b0 * xs * 4), yp = y + (ulong)((long)b0 * ys * 4);
            args[0] = &mat; args[1] = &rows; args[2] = &xp; args[3] = &xs; args[4] = &yp; args[5] = &ys; args[6] = &take; args[7] = &add; args[8] = &lut;
            _device.LaunchRaw(_gemv[(w.Kind, nb)], (grid, 1), GemvWarps * 32, 0, args);
            b0 += take;
        }
    }

    /// <summary>
    /// Quantizes <paramref name="batch"/> activation rows (stride <paramref name="xs"/> floats, zero-padded) into
    /// <paramref name="q"/>: per block of 32, <c>d = amax/127</c>, <c>q = round_half_even(x/d)</c>, and <c>d·Σq</c>.
    /// </summary>
    public void Quantize(ulong x, int xs, int cols, int batch, GpuActivations q)
    {
        if (batch > q.MaxBatch || xs > q.MaxStride || xs % 32 != 0) throw new ArgumentException($"activation buffer holds {q.MaxBatch}×{q.MaxStride}, asked {batch}×{xs}");
        int blocks = xs / 32;
        _device.Launch(QuantizeQ8, ((blocks + 127) / 128, batch), 128, 0, x, xs, cols, q.Codes, xs, q.Scales, q.Sums, blocks);
        q.Stride = xs;
    }

    private void GemvQ(GpuMatrix w, GpuActivations q, ulong y, int ys, int batch, bool accumulate)
    {
        var mat = w.Mat;
        int rows = w.Rows, add = accumulate ? 1 : 0;
        int grid = (rows + GemvWarps - 1) / GemvWarps;
        void** args = stackalloc void*[7];
        for (int b0 = 0; b0 < batch;)
        {
            int left = batch - b0, nb = left >= 16 ? 16 : left > 1 ? (left > 4 ? 16 : 4) : 1;
            int take = Math.Min(nb, left);
            int blocks = q.Stride / 32;
            var act = new QAct
            {
                Q = q.Codes.Pointer + (ulong)((long)b0 * q.Stride), D = q.Scales.Pointer + (ulong)((long)b0 * blocks * 4),
                S = q.Sums.Pointer + (ulong)((long)b0 * blocks * 4), Qs = q.Stride, Ds = blocks,
            };
            ulong yp = y + (ulong)((long)b0 * ys * 4);
            args[0] = &mat; args[1] = &rows; args[2] = &act; args[3] = &yp; args[4] = &ys; args[5] = &take; args[6] = &add;
            _device.LaunchRaw(_gemvq[(w.Kind, nb)], (grid, 1), GemvWarps * 32, 0, args);
            b0 += take;
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _nf4.Dispose();
        _fp4.Dispose();
    }
}
