using System.Numerics;

namespace QuantServe.Engine.Quantization.Methods;

/// <summary>
/// The GPTQ Hessian of one linear layer's input: <c>H = (2 / N) · Σ_t x_t x_tᵀ</c> over the N calibration tokens x_t
/// (columns × columns, double). Only the upper triangle is summed (and mirrored in <see cref="ToMatrix"/>).
/// </summary>
public sealed class GptqHessian : IGptqHessian
{
    private readonly double[] _sum;
    private double[] _panels = [];

    /// <summary>An empty Hessian for inputs of <paramref name="columns"/> features.</summary>
    public GptqHessian(int columns)
    {
        if (columns <= 0) throw new ArgumentOutOfRangeException(nameof(columns));
        Columns = columns;
        _sum = new double[(long)columns * columns];
    }

    /// <summary>Input width.</summary>
    public int Columns { get; }

    /// <summary>Tokens accumulated.</summary>
    public long Count { get; private set; }

    /// <summary>
    /// Adds <paramref name="tokens"/> input rows (row-major, <see cref="Columns"/> wide): every upper-triangle entry gains
    /// <c>x_t,i · x_t,j</c> token by token in order, in double. A product of two floats is exact in double, so the only
    /// rounding is one per addition, in a fixed order: the sum does not depend on SIMD width or thread count, and the
    /// device accumulator (<c>gptq_hessian_add</c>) produces the same bits. Blocks of H rows are spread over threads;
    /// entries left of the diagonal inside a panel are summed too (and ignored by <see cref="ToMatrix"/>).
    /// </summary>
    public void Add(ReadOnlySpan<float> rows, int tokens)
    {
        int n = Columns;
        if (rows.Length < (long)tokens * n) throw new ArgumentException($"{rows.Length} values for {tokens} rows of {n}");
        if (tokens == 0) return;
        // Columns in panels of one vector: panel p holds x[t, pW .. pW+W) for t = 0..tokens−1 contiguously, so one pass over
        // the tokens reads a panel front to back while the running sums of a few H rows stay in registers.
        int width = Vector<double>.Count, panels = (n + width - 1) / width;
        long need = (long)panels * tokens * width;
        if (_panels.Length < need) _panels = new double[need];
        var x = _panels;
        Array.Clear(x, 0, (int)need);
        for (int t = 0; t < tokens; t++)
            for (int j = 0; j < n; j++) x[((long)(j / width) * tokens + t) * width + j % width] = rows[t * n + j];
        var sum = _sum;
        int blocks = (n + RowBlock - 1) / RowBlock;
        // Block b touches the panels from its diagonal on: pair short and long blocks so each index does about the same work.
        Parallel.For(0, (blocks + 1) / 2, k =>
        {
            AddBlock(sum, x, n, tokens, width, panels, k);
            if (blocks - 1 - k != k) AddBlock(sum, x, n, tokens, width, panels, blocks - 1 - k);
        });
        Count += tokens;
    }

    /// <summary>H rows summed together per pass over a panel.</summary>
    private const int RowBlock = 4;

    private static void AddBlock(double[] sum, double[] x, int n, int tokens, int width, int panels, int block)
    {
        int i0 = block * RowBlock, rowsHere = Math.Min(RowBlock, n - i0);
        Span<double> tail = stackalloc double[width];
        Span<Vector<double>> acc = stackalloc Vector<double>[RowBlock];
        Span<long> xi = stackalloc long[RowBlock];
        for (int r = 0; r < rowsHere; r++) xi[r] = (long)((i0 + r) / width) * tokens * width + (i0 + r) % width;
        for (int p = i0 / width; p < panels; p++)
        {
            int j0 = p * width, cols = Math.Min(width, n - j0);
            for (int r = 0; r < rowsHere; r++)
            {
                var h = new Span<double>(sum, (i0 + r) * n + j0, cols);
                if (cols == width) acc[r] = new Vector<double>(h);
                else { tail.Clear(); h.CopyTo(tail); acc[r] = new Vector<double>(tail); }
            }
            long panel = (long)p * tokens * width;
            for (int t = 0; t < tokens; t++)
            {
                var v = new Vector<double>(x, (int)(panel + (long)t * width));
                // x_t,i · x_t,j is exact in double: fused or not, each step rounds once, at the addition.
                for (int r = 0; r < rowsHere; r++) acc[r] += new Vector<double>(x[xi[r] + (long)t * width]) * v;
            }
            for (int r = 0; r < rowsHere; r++)
            {
                var h = new Span<double>(sum, (i0 + r) * n + j0, cols);
                if (cols == width) acc[r].CopyTo(h);
                else { acc[r].CopyTo(tail); tail[..cols].CopyTo(h); }
            }
        }
    }

    /// <summary>h += a · x.</summary>
    internal static void Axpy(Span<double> h, double a, ReadOnlySpan<double> x)
    {
        int j = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var va = new Vector<double>(a);
            int step = Vector<double>.Count;
            for (; j <= h.Length - step; j += step)
                (new Vector<double>(h.Slice(j)) + va * new Vector<double>(x.Slice(j))).CopyTo(h.Slice(j));
        }
        for (; j < h.Length; j++) h[j] += a * x[j];
    }

    /// <inheritdoc />
    public void Dispose() { }

    /// <summary>The full symmetric matrix 2/N · Σ x xᵀ, row-major (zero when nothing was added).</summary>
    public double[] ToMatrix()
    {
        int n = Columns;
        var h = new double[_sum.Length];
        double f = Count > 0 ? 2.0 / Count : 0;
        for (int i = 0; i < n; i++)
            for (int j = i; j < n; j++)
                h[i * n + j] = h[j * n + i] = _sum[i * n + j] * f;
        return h;
    }
}
