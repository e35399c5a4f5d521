using QuantServe.Engine.Gpu.Cuda;

namespace QuantServe.Engine.Gpu;

/// <summary>
/// Plans and launches the tiled causal attention for prompt chunks (Gpu/Kernels/prefill_attention.cu). A piece's rows are
/// cut into runs of one sequence (same cache, consecutive positions — chunks never share a cache, so runs are exactly
/// the chunks' parts in the piece), and runs into tiles of at most <see cref="TileQueries"/> rows; the kernel runs one
/// block per (head, tile). Used for a piece when one of its runs has at least <see cref="MinRunTokens"/> tokens (a decode
/// step, all runs of one token, keeps the per-token kernel) and the head size fits (≤ 128, a multiple of 4).
/// </summary>
public sealed class GpuPrefillAttention : IDisposable
{
    /// <summary>Queries per block.</summary>
    public const int TileQueries = 64;

    private readonly CudaDevice _device;
    private readonly nint _kernel;
    private readonly DeviceBuffer _tiles;
    private readonly int[] _hostTiles;
    private readonly bool _headFits;

    /// <summary>Tile scratch for pieces of up to <paramref name="maxTokens"/> rows; the kernel comes from the loaded module.</summary>
    public GpuPrefillAttention(CudaDevice device, int maxTokens, int headDim)
    {
        _device = device;
        _kernel = device.Function("prefill_attention");
        _hostTiles = new int[2 * maxTokens];
        _tiles = device.AllocateZeroed(_hostTiles.Length * 4L);
        _headFits = headDim <= 128 && headDim % 4 == 0;
    }

    /// <summary>Smallest run that switches a piece to this kernel (default 8; <see cref="int.MaxValue"/> disables it).</summary>
    public int MinRunTokens { get; set; } = 8;

    /// <summary>Tiles of the last <see cref="Plan"/>, 0 when the piece keeps the per-token kernel.</summary>
    public int Tiles { get; private set; }

    /// <summary>
    /// Cuts rows 0..<paramref name="tokens"/> into tiles from their positions and layer-0 cache addresses
    /// (<paramref name="cacheOf"/>[row]) and queues the tile table's upload; returns whether the piece uses this kernel.
    /// </summary>
    public unsafe bool Plan(ReadOnlySpan<int> positions, ReadOnlySpan<ulong> cacheOf, int tokens)
    {
        Tiles = 0;
        if (!_headFits) return false;
        var (tiles, longest) = Cut(positions, cacheOf, tokens, _hostTiles);
        if (longest < MinRunTokens) return false;
        Tiles = tiles;
        fixed (int* p = _hostTiles)
            _device.Driver.Check(_device.Driver.cuMemcpyHtoDAsync(_tiles.Pointer, p, (nuint)(Tiles * 2 * sizeof(int)), _device.Stream), "cuMemcpyHtoDAsync");
        return true;
    }

    /// <summary>
    /// Cuts rows into runs (a new run where the cache address changes or the position does not follow the previous row's)
    /// and runs into tiles of at most <see cref="TileQueries"/> rows, written as (first row, rows) pairs to
    /// <paramref name="tiles"/>; returns the tile count and the longest run.
    /// </summary>
    public static (int Tiles, int LongestRun) Cut(ReadOnlySpan<int> positions, ReadOnlySpan<ulong> cacheOf, int tokens, Span<int> tiles)
    {
        int count = 0, longest = 0;
        for (int r = 0, start = 0; r < tokens; r++)
        {
            bool ends = r + 1 == tokens || cacheOf[r + 1] != cacheOf[r] || positions[r + 1] != positions[r] + 1;
            if (!ends) continue;
            longest = Math.Max(longest, r + 1 - start);
            for (int s = start; s <= r; s += TileQueries)
            {
                tiles[2 * count] = s;
                tiles[2 * count + 1] = Math.Min(TileQueries, r + 1 - s);
                count++;
            }
            start = r + 1;
        }
        return (count, longest);
    }

    /// <summary>
    /// Queues attention for the planned tiles: <c>out[t, h·d..] = Σ_{j ≤ pos_t} softmax_j(q_t,h · k_j / √d) v_j</c> over the
    /// KV head <c>h / (heads / kvHeads)</c> of each row's cache; arguments as the per-token kernel's.
    /// </summary>
    public void Launch(ulong q, int qs, ulong output, int os, ulong positions, ulong kc, ulong vc, long layerOffset,
        int heads, int kvHeads, int headDim, float scale)
    {
        if (Tiles == 0) throw new InvalidOperationException("no tiles planned");
        _device.Launch(_kernel, (heads, Tiles), 256, 0, q, qs, output, os, positions, kc, vc, layerOffset, _tiles.Pointer,
            heads, kvHeads, headDim, scale);
    }

    /// <inheritdoc />
    public void Dispose() => _tiles.Dispose();
}
