using QuantServe.Engine.Gpu.Cuda;

namespace QuantServe.Engine.Gpu;

/// <summary>
/// Launcher of the tensor-core dequantize-GEMM kernels (Gpu/Kernels/gemm.cu):
/// <c>Y[t, n] (+)= Σ_k X[t, k] · W[n, k]</c> for t &lt; T tokens, every resident matrix layout, weights dequantized to F16
/// per 128-row × 64-column tile in shared memory and multiplied with F16-rounded activations by <c>mma.sync m16n8k16</c>
/// with F32 accumulation (F16 weights: activations split as <c>x = f16(x) + f16(x − f16(x))</c>, two products, so they
/// keep ~22 bits; F32 weights are not handled, see <see cref="Handles"/>). A tile of BM ∈ {32, 64, 128} tokens reads each weight once; K is split across blocks (partial
/// sums added atomically) when the row tiles alone would not fill the device. Only on sm_80 and newer.
/// </summary>
public sealed unsafe class GpuGemm
{
    /// <summary>Weight rows per block.</summary>
    public const int TileRows = 128;
    /// <summary>Columns per K tile.</summary>
    public const int TileK = 64;
    /// <summary>Threads per block.</summary>
    public const int Threads = 256;
    /// <summary>Token tiles the kernels are instantiated for.</summary>
    public static readonly int[] TokenTiles = [32, 64, 128];

    private readonly CudaDevice _device;
    private readonly Dictionary<(GpuKernelKind, int, bool), nint> _functions = [];

    /// <summary>Loads the GEMM kernels of the module already loaded into <paramref name="device"/>.</summary>
    public GpuGemm(CudaDevice device)
    {
        _device = device;
        foreach (GpuKernelKind kind in Enum.GetValues<GpuKernelKind>())
        {
            if (!Handles(kind)) continue;
            foreach (int bm in TokenTiles) _functions[(kind, bm, false)] = device.Function(KernelName(kind, bm, false));
            if (kind == GpuKernelKind.F16)
                foreach (int bm in (int[])[32, 64]) _functions[(kind, bm, true)] = device.Function(KernelName(kind, bm, true));
        }
    }

    /// <summary>Whether <paramref name="kind"/> has GEMM kernels: every kind but F32, whose weights (the tiny llama2.c
    /// checkpoints) stay on the F32 GEMV so they keep float-rounding agreement with the CPU.</summary>
    public static bool Handles(GpuKernelKind kind) => kind != GpuKernelKind.F32;

    /// <summary>Whether a device of compute capability <paramref name="major"/>.x has the kernels' <c>mma.sync</c> shape.</summary>
    public static bool Supports(int major) => major >= 8;

    /// <summary>The kernel's name in gemm.cu.</summary>
    public static string KernelName(GpuKernelKind kind, int tokenTile, bool split)
        => $"gemm_{(kind == GpuKernelKind.Codebook ? "nf4" : kind.ToString().ToLowerInvariant())}{(split ? "_x2" : "")}_{tokenTile}";

    /// <summary>Whether F16 weights multiply the activations split in two F16 halves (default true: the unquantized
    /// format stays within float rounding of the CPU, at about a quarter of the speed); false rounds activations to F16
    /// once, as cuBLAS F16 GEMMs do.</summary>
    public bool SplitActivationsForUnquantized { get; set; } = true;

    /// <summary>
    /// The launch plan for <paramref name="tokens"/> × <paramref name="rows"/> × <paramref name="cols"/> on
    /// <paramref name="multiprocessors"/> SMs: the token tile and number of K splits minimising
    /// <c>⌈blocks / (2·SMs)⌉ · ⌈kTiles / splits⌉ · (tile + 64)</c> — waves of two resident blocks per SM, times K tiles per
    /// block, times the work of one K tile (MMAs for the tokens plus one weight dequantization, worth about 64 tokens).
    /// Ties keep the larger tile and fewer splits.
    /// </summary>
    public static (int TokenTile, int Splits, int TilesPerSplit) Plan(int tokens, int rows, int cols, int multiprocessors, bool split)
    {
        int rowTiles = (rows + TileRows - 1) / TileRows, kTiles = (cols + TileK - 1) / TileK;
        int[] tiles = split ? [32, 64] : TokenTiles;
        var best = (TokenTile: tiles[0], Splits: 1, TilesPerSplit: kTiles);
        long bestCost = long.MaxValue;
        for (int i = tiles.Length - 1; i >= 0; i--)
        {
            int bm = tiles[i];
            if (bm > Math.Max(tiles[0], (tokens + 31) & ~31)) continue;
            long blocks = (long)rowTiles * ((tokens + bm - 1) / bm);
            for (int s = 1; s <= kTiles; s++)
            {
                int per = (kTiles + s - 1) / s;
                if ((kTiles + per - 1) / per != s) continue;
                long cost = (blocks * s + 2L * multiprocessors - 1) / (2L * multiprocessors) * per * (bm + 64);
                if (cost < bestCost) { bestCost = cost; best = (bm, s, per); }
            }
        }
        return best;
    }

    /// <summary>
    /// Queues <c>y[t·ys + n] (+)= Σ_k W[n, k]·x[t·xs + k]</c> for n &lt; w.Rows, t &lt; <paramref name="tokens"/>. x rows must
    /// be zero-padded to a multiple of 64 columns (the model pads to 256). <paramref name="lut"/>: the NF4/FP4 code values.
    /// </summary>
    public void Run(GpuMatrix w, ulong x, int xs, ulong y, int ys, int tokens, bool accumulate, ulong lut)
    {
        int kTiles = (w.Cols + TileK - 1) / TileK;
        if (xs < kTiles * TileK || xs % 4 != 0) throw new ArgumentException($"activation stride {xs} must be a multiple of 4 covering {kTiles * TileK} columns");
        bool split = SplitActivationsForUnquantized && w.Kind == GpuKernelKind.F16 && !w.Dequantized;
        var (bm, splits, per) = Plan(tokens, w.Rows, w.Cols, _device.Info.Multiprocessors, split);
        if (splits > 1 && !accumulate)
        {
            // Partial sums are added atomically, so the output starts at zero: only the rows × tokens it writes, as a 2D
            // memset (pitch ys floats), since the gaps of a strided y hold other products (the [q | k | v] rows).
            _device.Driver.Check(_device.Driver.cuMemsetD2D32Async(y, (nuint)(ys * 4L), 0, (nuint)w.Rows, (nuint)tokens, _device.Stream), "cuMemsetD2D32Async");
        }
        var mat = w.Mat;
        int rows = w.Rows, add = accumulate ? 1 : 0;
        void** args = stackalloc void*[10];
        args[0] = &mat; args[1] = &rows; args[2] = &x; args[3] = &xs; args[4] = &y; args[5] = &ys; args[6] = &tokens; args[7] = &add; args[8] = &per; args[9] = &lut;
        var f = _functions[(w.Kind, bm, split)];
        _device.Driver.Check(_device.Driver.cuLaunchKernel(f, (uint)((rows + TileRows - 1) / TileRows), (uint)((tokens + bm - 1) / bm), (uint)splits,
            Threads, 1, 1, 0, _device.Stream, args, null), "cuLaunchKernel", $"{KernelName(w.Kind, bm, split)} {tokens}×{rows}×{w.Cols}, {splits} splits");
    }
}
