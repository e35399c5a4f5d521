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
    public static readonly string[] SourceFiles = ["gemv.cu", "gemvq.cu", "ops.cu", "gemm.cu", "prefill_attention.cu", "quant.cu"];

    /// <summary>NVRTC options used for every compile.</summary>
    public static readonly string[] CompileOptions = ["--std=c++17", "-default-device", "--restrict"];

    /// <summary>Warps (rows) per block of the GEMV kernels.</summary>
    public const int GemvWarps = 4;

    private readonly CudaDevice _device;
    private readonly Dictionary<(GpuKernelKind, int), nint> _gemv = [];
    private readonly Dictionary<(GpuKernelKind, int), nint> _gemvq = [];
    private readonly Dictionary<(GpuKernelKind, int), nint> _gemvqGlu = [];
    private readonly DeviceBuffer _nf4, _fp4;

    /// <summary>
    /// The concatenated kernel source. Lines in the environment variable QUANTSERVE_KERNEL_DEFINES (';'-separated, e.g.
    /// "#define GEMVQ_U1 2") are put first: a tuning knob for trying kernel variants on a device without rebuilding (the
    /// on-disk cache is keyed by the source, so each variant compiles once).
    /// </summary>
    public static string Source()
    {
        var asm = typeof(GpuKernels).Assembly;
        var defines = Environment.GetEnvironmentVariable("QUANTSERVE_KERNEL_DEFINES");
        string prefix = string.IsNullOrWhiteSpace(defines) ? "" : string.Join("\n", defines.Split(';', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)) + "\n";
        return prefix + string.Join("\n", SourceFiles.Select(f =>
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
            {
                _gemvq[(kind, nb)] = device.Function($"gemvq_{GemvName(kind)}_{nb}");
                _gemvqGlu[(kind, nb)] = device.Function($"gemvq_{GemvName(kind)}_glu_{nb}");
            }
        QuantizeQ8 = device.Function("quantize_q8");
        RmsNormQ8 = device.Function("rmsnorm_q8");
        AttentionSplit = device.Function("attention_split");
        AttentionCombine = device.Function("attention_combine");
        Multiprocessors = device.Info.Multiprocessors;
        Embed = device.Function("embed");
        RmsNorm = device.Function("rmsnorm");
        AddBias = device.Function("add_bias");
        SwiGlu = device.Function("swiglu");
        RopeStore = device.Function("rope_store");
        Attention = device.Function("attention");
        Argmax = device.Function("argmax_rows");
        TopK = device.Function("topk_sample");
        Gemm = GpuGemm.Supports(device.Info.Major) ? new GpuGemm(device) : null;
        CanLaunchProgrammatic = ProbeProgrammatic();
        _nf4 = device.Allocate(64);
        device.Upload(CodebookFormat.Nf4.Values, _nf4.Pointer);
        _fp4 = device.Allocate(64);
        device.Upload(CodebookFormat.Fp4.Values, _fp4.Pointer);
    }

    /// <summary>Kinds with an integer-dot (dp4a) kernel over int8-quantized activations.</summary>
    public static readonly GpuKernelKind[] IntegerDotKinds =
        [GpuKernelKind.Q8_0, GpuKernelKind.Q4_0, GpuKernelKind.Q4_K, GpuKernelKind.Q5_K, GpuKernelKind.Q6_K, GpuKernelKind.Int4, GpuKernelKind.Int8, GpuKernelKind.Codebook];

    /// <summary>Whether <paramref name="w"/> is read by an integer-dot kernel (and so wants quantized activations).</summary>
    public static bool UsesIntegerDot(GpuMatrix w) => Array.IndexOf(IntegerDotKinds, w.Kind) >= 0;

    internal static string GemvName(GpuKernelKind kind) => kind switch
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
    internal nint RmsNormQ8 { get; }
    internal nint AttentionSplit { get; }
    internal nint AttentionCombine { get; }
    private int Multiprocessors { get; }
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
            RunRaw(_gemv[(w.Kind, nb)], (grid, 1), GemvWarps * 32, 0, args);
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
        Run(QuantizeQ8, ((blocks + 127) / 128, batch), 128, 0, x, xs, cols, q.Codes, xs, q.Scales, q.Sums, blocks);
        q.Stride = xs;
    }

    /// <summary>
    /// RMSNorm fused with <see cref="Quantize"/>: <c>y[t] = w ⊙ x[r] / sqrt(mean(x[r]²) + eps)</c> with r = rows[t] (rows 0:
    /// r = t), written as F32 to y (stride ys) and quantized per block of 32 over the padded width ys into <paramref name="q"/>,
    /// bit-identical to <c>rmsnorm</c> then <see cref="Quantize"/>.
    /// </summary>
    public void RmsNormQuantize(ulong x, int xs, ulong rows, ulong w, ulong y, int ys, int dim, float eps, int batch, GpuActivations q)
    {
        if (batch > q.MaxBatch || ys > q.MaxStride || ys % 32 != 0) throw new ArgumentException($"activation buffer holds {q.MaxBatch}×{q.MaxStride}, asked {batch}×{ys}");
        Run(RmsNormQ8, (batch, 1), 256, 0, x, xs, rows, w, y, ys, dim, eps, q.Codes, ys, q.Scales, q.Sums, ys / 32);
        q.Stride = ys;
    }

    /// <summary>
    /// The fused gate/up/SwiGLU product for a matrix stacked from gate (rows 0..n) and up (rows n..2n) by
    /// <see cref="GpuMatrix.UploadStacked"/>: <c>y[b·ys + r] = SiLU(g_r)·u_r</c>, g_r and u_r the two rows' dot products with
    /// quantized activations b, SiLU(g) = g / (1 + e^−g). One launch per tile of up to 16 activation rows.
    /// </summary>
    public void GemvGlu(GpuMatrix gateUp, GpuActivations q, ulong y, int ys, int batch)
    {
        if (!UsesIntegerDot(gateUp) || gateUp.Rows % 2 != 0) throw new ArgumentException($"{gateUp}: not a stacked integer-dot gate/up matrix");
        LaunchQ(_gemvqGlu, gateUp, gateUp.Rows / 2, true, q, y, ys, batch, false);
    }

    /// <summary>Split count limit for <see cref="DecodeAttention"/>: enough (head, split) blocks to give every SM about four.</summary>
    public int AttentionSplits(int heads, int tokens) => AttentionSplits(heads, tokens, Multiprocessors);

    /// <summary>
    /// ⌈4 · <paramref name="multiprocessors"/> / (heads · tokens)⌉ clamped to [1, <see cref="MinAttentionChunk"/>]: never more
    /// splits than positions per split, so every split of a context that uses them all holds at least one position.
    /// </summary>
    public static int AttentionSplits(int heads, int tokens, int multiprocessors)
        => Math.Clamp((4 * multiprocessors + heads * tokens - 1) / (heads * tokens), 1, MinAttentionChunk);

    /// <summary>Fewest cache positions one split handles (and the most splits, so no split is empty).</summary>
    public const int MinAttentionChunk = 32;

    /// <summary>Floats of split-K scratch <see cref="DecodeAttention"/> needs.</summary>
    public static long AttentionScratchFloats(int tokens, int heads, int headDim, int maxSplits) => (long)tokens * heads * maxSplits * (headDim + 2);

    /// <summary>
    /// Split-K (flash-decoding) causal GQA attention for <paramref name="tokens"/> rows: token t attends to positions
    /// 0..positions[t] of its cache (kc/vc: per-token layer base addresses, offset by <paramref name="layerOffset"/> floats),
    /// out = Σ_j softmax(scale · q·k_j) v_j. Each (token, head) is cut into at most <paramref name="maxSplits"/> chunks of at
    /// least <see cref="MinAttentionChunk"/> positions (chosen per token on the device), combined with their running max and
    /// sum. When <paramref name="quantized"/> is given and head_dim is a multiple of 32, the output rows are also quantized into
    /// it for the next integer-dot GEMV (the caller then skips <see cref="Quantize"/>); returns whether it was.
    /// </summary>
    public bool DecodeAttention(ulong q, int qs, ulong output, int os, ulong positions, ulong kc, ulong vc, long layerOffset,
        int heads, int kvHeads, int headDim, float scale, int tokens, ulong scratch, int maxSplits, GpuActivations? quantized)
    {
        if (headDim > 256 || headDim % 4 != 0) throw new ArgumentException($"head_dim {headDim}: split attention needs a multiple of 4 up to 256");
        Run(AttentionSplit, (heads * maxSplits, tokens), 128, 0, q, qs, scratch, positions, kc, vc, layerOffset, heads, kvHeads, headDim, scale,
            maxSplits, MinAttentionChunk);
        bool quantize = quantized != null && headDim % 32 == 0;
        if (quantize && (tokens > quantized!.MaxBatch || os > quantized.MaxStride)) throw new ArgumentException("activation buffer too small for the attention rows");
        Run(AttentionCombine, (heads, tokens), (headDim + 31) / 32 * 32, 0, scratch, output, os, positions, heads, headDim, maxSplits, MinAttentionChunk,
            quantize ? quantized!.Codes.Pointer : 0UL, os, quantize ? quantized!.Scales.Pointer : 0UL, quantize ? quantized!.Sums.Pointer : 0UL, os / 32);
        if (quantize) quantized!.Stride = os;
        return quantize;
    }

    /// <summary>The one-block-per-(token, head) attention kernel (no split), same contract as <see cref="DecodeAttention"/>.</summary>
    public void AttentionSingle(ulong q, int qs, ulong output, int os, ulong positions, ulong kc, ulong vc, long layerOffset,
        int heads, int kvHeads, int headDim, float scale, int tokens)
        => Run(Attention, (heads, tokens), 128, 0, q, qs, output, os, positions, kc, vc, layerOffset, heads, kvHeads, headDim, scale);

    // Rows per warp of the integer-dot kernels (gemvq.cu's DEFINE_GEMVQ): one at batch 1, two for batch tiles; the GLU
    // kernels pair a gate row with its up row.
    private void GemvQ(GpuMatrix w, GpuActivations q, ulong y, int ys, int batch, bool accumulate) => LaunchQ(_gemvq, w, w.Rows, false, q, y, ys, batch, accumulate);

    private void LaunchQ(Dictionary<(GpuKernelKind, int), nint> kernels, GpuMatrix w, int rows, bool glu, GpuActivations q, ulong y, int ys, int batch, bool accumulate)
    {
        var mat = w.Mat;
        int add = accumulate ? 1 : 0;
        void** args = stackalloc void*[7];
        for (int b0 = 0; b0 < batch;)
        {
            int left = batch - b0, nb = left >= 16 ? 16 : left > 1 ? (left > 4 ? 16 : 4) : 1;
            int take = Math.Min(nb, left);
            int warps = glu || nb == 1 ? rows : (rows + 1) / 2;
            int grid = (warps + GemvWarps - 1) / GemvWarps;
            int blocks = q.Stride / 32;
            var act = new QAct
            {
                Q = q.Codes.Pointer + (ulong)((long)b0 * q.Stride), D = q.Scales.Pointer + (ulong)((long)b0 * blocks * 4),
                S = q.Sums.Pointer + (ulong)((long)b0 * blocks * 4), Qs = q.Stride, Ds = blocks,
            };
            ulong yp = y + (ulong)((long)b0 * ys * 4);
            args[0] = &mat; args[1] = &rows; args[2] = &act; args[3] = &yp; args[4] = &ys; args[5] = &take; args[6] = &add;
            RunRaw(kernels[(w.Kind, nb)], (grid, 1), GemvWarps * 32, 0, args);
            b0 += take;
        }
    }

    /// <summary>
    /// While true (and the device supports it), kernels are queued with programmatic dependent launch: each may be scheduled
    /// before the previous one finishes (every kernel here waits for its predecessor first). The decode path turns it on
    /// for the kernels after the first of a step when <see cref="GpuLlamaModel.ProgrammaticLaunch"/> is set; launches of
    /// kernels without that wait must not happen meanwhile.
    /// </summary>
    public bool Programmatic { get; set; }

    /// <summary>Whether a programmatic dependent launch worked on this device (probed once with an empty kernel).</summary>
    public bool CanLaunchProgrammatic { get; }

    private bool ProbeProgrammatic()
    {
        if (!_device.SupportsProgrammaticLaunch) return false;
        try
        {
            _device.LaunchProgrammatic(AddBias, (1, 1), 32, 0, 0UL, 0, 0UL, 0);
            _device.Synchronize();
            return true;
        }
        catch (CudaException) { return false; }
    }

    /// <summary>Queues one of these kernels (see <see cref="Programmatic"/>).</summary>
    internal void Launch(nint function, (int X, int Y) grid, int block, int sharedBytes, params ReadOnlySpan<KernelArg> args) => Run(function, grid, block, sharedBytes, args);

    private void Run(nint function, (int X, int Y) grid, int block, int sharedBytes, params ReadOnlySpan<KernelArg> args)
    {
        if (Programmatic) _device.LaunchProgrammatic(function, grid, block, sharedBytes, args);
        else _device.Launch(function, grid, block, sharedBytes, args);
    }

    private void RunRaw(nint function, (int X, int Y) grid, int block, int sharedBytes, void** args)
    {
        if (Programmatic) _device.LaunchRawProgrammatic(function, grid, block, sharedBytes, args);
        else _device.LaunchRaw(function, grid, block, sharedBytes, args);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _nf4.Dispose();
        _fp4.Dispose();
    }
}
