namespace QuantServe.Engine.Quantization.Methods;

/// <summary>Dense symmetric positive-definite helpers in double, row-major n × n.</summary>
internal static class Cholesky
{
    /// <summary>In place: the lower factor L with A = L·Lᵀ (upper part zeroed). False when A is not positive definite.</summary>
    public static bool FactorLower(double[] a, int n)
    {
        for (int j = 0; j < n; j++)
        {
            double d = a[j * n + j];
            for (int k = 0; k < j; k++) d -= a[j * n + k] * a[j * n + k];
            if (!(d > 0)) return false;
            d = Math.Sqrt(d);
            a[j * n + j] = d;
            int jj = j;
            Parallel.For(j + 1, n, i =>
            {
                double s = a[i * n + jj];
                for (int k = 0; k < jj; k++) s -= a[i * n + k] * a[jj * n + k];
                a[i * n + jj] = s / d;
            });
        }
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++) a[i * n + j] = 0;
        return true;
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
        // M = L⁻¹ (lower), column by column.
        var m = new double[n * n];
        Parallel.For(0, n, c =>
        {
            m[c * n + c] = 1 / l[c * n + c];
            for (int i = c + 1; i < n; i++)
            {
                double s = 0;
                for (int k = c; k < i; k++) s -= l[i * n + k] * m[k * n + c];
                m[i * n + c] = s / l[i * n + i];
            }
        });
        // A⁻¹ = Mᵀ·M.
        var inv = new double[n * n];
        Parallel.For(0, n, i =>
        {
            for (int j = i; j < n; j++)
            {
                double s = 0;
                for (int k = Math.Max(i, j); k < n; k++) s += m[k * n + i] * m[k * n + j];
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
