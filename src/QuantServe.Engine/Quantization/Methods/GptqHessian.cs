using System.Numerics;

namespace QuantServe.Engine.Quantization.Methods;

/// <summary>
/// The GPTQ Hessian of one linear layer's input: <c>H = (2 / N) · Σ_t x_t x_tᵀ</c> over the N calibration tokens x_t
/// (columns × columns, double). Only the upper triangle is summed (and mirrored in <see cref="ToMatrix"/>).
/// </summary>
public sealed class GptqHessian : IGptqHessian
{
    private readonly double[] _sum;
    private float[] _columns = [];

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
    /// Adds <paramref name="tokens"/> input rows (row-major, <see cref="Columns"/> wide): the rows are transposed into
    /// per-feature columns, and each upper-triangle entry gains the float SIMD dot product of two columns
    /// (<c>Σ_t x_t,i · x_t,j</c> over this batch, summed into double across batches). Rows of H are spread over threads.
    /// </summary>
    public void Add(ReadOnlySpan<float> rows, int tokens)
    {
        int n = Columns;
        if (rows.Length < (long)tokens * n) throw new ArgumentException($"{rows.Length} values for {tokens} rows of {n}");
        if (tokens == 0) return;
        if (_columns.Length < (long)tokens * n) _columns = new float[(long)tokens * n];
        var cols = _columns;
        for (int t = 0; t < tokens; t++)
        {
            var row = rows.Slice(t * n, n);
            for (int i = 0; i < n; i++) cols[i * tokens + t] = row[i];
        }
        var sum = _sum;
        // Row i has n − i entries: pair short and long rows so each index of the loop does about the same work.
        Parallel.For(0, (n + 1) / 2, k =>
        {
            AddRow(k);
            if (n - 1 - k != k) AddRow(n - 1 - k);
        });
        Count += tokens;

        void AddRow(int i)
        {
            var ci = new ReadOnlySpan<float>(cols, i * tokens, tokens);
            for (int j = i; j < n; j++)
                sum[(long)i * n + j] += System.Numerics.Tensors.TensorPrimitives.Dot(ci, new ReadOnlySpan<float>(cols, j * tokens, tokens));
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
