using System.Numerics.Tensors;

namespace QuantServe.Engine.Quantization.Methods;

/// <summary>
/// Dense symmetric positive-definite helpers in double, row-major n × n. Every inner loop is a contiguous dot product or
/// axpy over rows (SIMD through <see cref="TensorPrimitives"/>), and independent rows or columns are spread over threads.
/// </summary>
internal static class Cholesky
{
    /// <summary>In place: the lower factor L with A = L·Lᵀ (upper part zeroed). False when A is not positive definite.</summary>
    public static bool FactorLower(double[] a, int n)
    {
        for (int j = 0; j < n; j++)
        {
            var rj = new ReadOnlySpan<double>(a, j * n, j);
            double d = a[j * n + j] - TensorPrimitives.Dot(rj, rj);
            if (!(d > 0)) return false;
            d = Math.Sqrt(d);
            a[j * n + j] = d;
            int jj = j;
            // L[i, j] = (A[i, j] − L[i, :j]·L[j, :j]) / L[j, j], rows i > j independent.
            int rows = n - j - 1;
            if (rows <= 0) continue;
            if ((long)rows * j < 1 << 15)
                for (int i = j + 1; i < n; i++) Entry(a, n, i, jj, d);
            else
                Parallel.For(0, Math.Min(rows, Environment.ProcessorCount * 4), part =>
                {
                    int parts = Math.Min(rows, Environment.ProcessorCount * 4);
                    for (int i = jj + 1 + part; i < n; i += parts) Entry(a, n, i, jj, d);
                });
        }
        for (int i = 0; i < n; i++) Array.Clear(a, i * n + i + 1, n - i - 1);
        return true;
    }

    private static void Entry(double[] a, int n, int i, int j, double d)
    {
        double s = a[i * n + j] - TensorPrimitives.Dot(new ReadOnlySpan<double>(a, i * n, j), new ReadOnlySpan<double>(a, j * n, j));
        a[i * n + j] = s / d;
    }

    /// <summary>
    /// The upper Cholesky factor U of A⁻¹ (A⁻¹ = Uᵀ·U), GPTQ's <c>cholesky(cholesky_inverse(cholesky(A)), upper=True)</c>.
    /// False when A is not positive definite.
    /// </summary>
    public static bool UpperFactorOfInverse(double[] a, int n, out double[] u)
    {
        u = [];
        var l = (double[])a.Clone();
        if (!FactorLower(l, n)) return false;
        // T = (L⁻¹)ᵀ, upper. Column c of L⁻¹ solves L·m = e_c; T's row c is that column, so each row is independent:
        // m_c = 1 / L[c, c]; m_i = −(Σ_{c ≤ k < i} L[i, k]·m_k) / L[i, i] — a contiguous dot of L's row i with T's row c.
        var t = new double[n * n];
        Parallel.For(0, n, c =>
        {
            var row = t.AsSpan(c * n, n);
            row[c] = 1 / l[c * n + c];
            for (int i = c + 1; i < n; i++)
                row[i] = -TensorPrimitives.Dot(new ReadOnlySpan<double>(l, i * n + c, i - c), row.Slice(c, i - c)) / l[i * n + i];
        });
        // A⁻¹ = L⁻ᵀ·L⁻¹ = T·Tᵀ: entry (i, j) is the dot of T's rows i and j over k ≥ max(i, j).
        var inv = new double[n * n];
        Parallel.For(0, n, i =>
        {
            for (int j = i; j < n; j++)
            {
                double s = TensorPrimitives.Dot(new ReadOnlySpan<double>(t, i * n + j, n - j), new ReadOnlySpan<double>(t, j * n + j, n - j));
                inv[i * n + j] = inv[j * n + i] = s;
            }
        });
        if (!FactorLower(inv, n)) return false;
        u = new double[n * n];
        for (int i = 0; i < n; i++)
            for (int j = i; j < n; j++) u[i * n + j] = inv[j * n + i];
        return true;
    }
}
