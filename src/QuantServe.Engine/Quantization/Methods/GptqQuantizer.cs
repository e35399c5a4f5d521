namespace QuantServe.Engine.Quantization.Methods;

/// <summary>
/// GPTQ (Frantar et al., 2022) for one matrix W (rows × cols, y = W·x) given the Hessian H = 2/N·Σ x xᵀ of its input.
/// Preparation as AutoGPTQ: dead columns (H_jj = 0) get H_jj = 1 and weight 0; with act-order columns are permuted by
/// descending H_jj; H += damp · mean(diag H) · I (the dampening grows ×10 until H is positive definite); U = upper Cholesky
/// factor of H⁻¹. Then for each column i in order, per row: at a group start the grid is fitted to the row's current
/// (already error-compensated) weights of the group, <c>q_i = quant(w_i)</c>, <c>e = (w_i − deq(q_i)) / U_ii</c>, and
/// every later column is corrected <c>w_j −= e · U_ij</c>. With <see cref="GptqOptions.MseGrid"/> each group's range is
/// the least-error clipped one; with <see cref="GptqOptions.StaticGroups"/> (act-order) the groups are consecutive original
/// columns fitted once up front, so g_idx stays <c>c / group</c>. Columns are processed in blocks: corrections inside a block are
/// applied at once, those to later blocks lazily as one batched update per block (the same sums, reordered). Rows are
/// independent and processed in parallel.
/// </summary>
public static class GptqQuantizer
{
    /// <summary>Quantizes row-major <paramref name="weights"/> (rows × cols) with the cols × cols <paramref name="hessian"/>.</summary>
    public static GptqResult Quantize(ReadOnlySpan<float> weights, int rows, int cols, double[] hessian, GptqOptions options)
        => Run(weights, rows, cols, hessian, options, lazy: true);

    /// <summary>
    /// The same algorithm without blocks or lazy updates, one row at a time: every correction is applied to all later
    /// columns as soon as a column is quantized. Slow; the reference the blocked version is tested against.
    /// </summary>
    public static GptqResult QuantizeReference(ReadOnlySpan<float> weights, int rows, int cols, double[] hessian, GptqOptions options)
        => Run(weights, rows, cols, hessian, options, lazy: false);

    /// <summary>
    /// <see cref="Quantize(ReadOnlySpan{float}, int, int, double[], GptqOptions)"/> with the per-row column sweep on
    /// <paramref name="accelerator"/> when it takes the matrix (the Hessian preparation and its Cholesky factor stay on
    /// the CPU, in double); otherwise on the CPU.
    /// </summary>
    public static GptqResult Quantize(ReadOnlySpan<float> weights, int rows, int cols, double[] hessian, GptqOptions options,
        IGptqAccelerator? accelerator)
    {
        var plan = Prepare(weights, rows, cols, hessian, options, lazy: true);
        var q = new byte[rows * cols];
        var scales = new float[rows * plan.Groups];
        var zeros = new int[rows * plan.Groups];
        if (accelerator is null || !accelerator.TrySweep(plan, weights, q, scales, zeros)) Sweep(plan, weights, q, scales, zeros);
        return Finish(plan, options, q, scales, zeros);
    }

    private static GptqResult Run(ReadOnlySpan<float> weights, int rows, int cols, double[] hessian, GptqOptions options, bool lazy)
    {
        var plan = Prepare(weights, rows, cols, hessian, options, lazy);
        var q = new byte[rows * cols];
        var scales = new float[rows * plan.Groups];
        var zeros = new int[rows * plan.Groups];
        Sweep(plan, weights, q, scales, zeros);
        return Finish(plan, options, q, scales, zeros);
    }

    private static GptqPlan Prepare(ReadOnlySpan<float> weights, int rows, int cols, double[] hessian, GptqOptions options, bool lazy)
    {
        options.Validate();
        if (rows <= 0 || cols <= 0) throw new ArgumentException($"bad matrix shape {rows} × {cols}");
        if (weights.Length != rows * cols) throw new ArgumentException($"{weights.Length} weights for {rows} × {cols}");
        if (hessian.Length != (long)cols * cols) throw new ArgumentException($"Hessian has {hessian.Length} entries, expected {cols}²");

        int n = cols;
        var h = (double[])hessian.Clone();
        var dead = new bool[n];
        for (int j = 0; j < n; j++)
            if (h[j * n + j] == 0) { dead[j] = true; h[j * n + j] = 1; }

        // Processing order: position i handles original column perm[i].
        int[]? perm = null;
        if (options.ActOrder)
        {
            perm = Enumerable.Range(0, n).ToArray();
            var diag = perm.Select(j => h[j * n + j]).ToArray();
            // Stable descending sort, so ties keep the original order.
            perm = perm.OrderByDescending(j => diag[j]).ThenBy(j => j).ToArray();
            var p = new double[n * n];
            for (int a = 0; a < n; a++)
                for (int b = 0; b < n; b++) p[a * n + b] = h[perm[a] * n + perm[b]];
            h = p;
        }

        double mean = 0;
        for (int j = 0; j < n; j++) mean += h[j * n + j];
        mean /= n;
        double damp = options.Damp * mean;
        double[] u;
        for (int attempt = 0; ; attempt++)
        {
            var hd = (double[])h.Clone();
            for (int j = 0; j < n; j++) hd[j * n + j] += damp;
            if (Cholesky.UpperFactorOfInverse(hd, n, out u)) break;
            if (attempt == 6) throw new InvalidOperationException("GPTQ: the Hessian is not positive definite even after dampening ×10⁶");
            damp = damp > 0 ? damp * 10 : 1e-6 * Math.Max(mean, 1e-12);
        }

        int group = options.GroupSize > 0 ? options.GroupSize : n;
        int block = lazy ? Math.Min(options.EffectiveBlock(n), n) : n;
        return new GptqPlan(rows, n, dead, perm, u, group, (n + group - 1) / group, options.MaxQ, options.Symmetric, options.MseGrid,
            options.StaticGroups && perm is not null, block);
    }

    private static GptqResult Finish(GptqPlan plan, GptqOptions options, byte[] q, float[] scales, int[] zeros)
    {
        int n = plan.Cols, group = plan.Group;
        var perm = plan.Perm;
        var gIdx = new int[n];
        for (int i = 0; i < n; i++) gIdx[perm?[i] ?? i] = plan.StaticGroups ? (perm![i]) / group : i / group;
        return new GptqResult(options, plan.Rows, n, plan.Groups, q, scales, zeros, gIdx, perm);
    }

    /// <summary>The CPU column sweep of every row (see the class summary), writing codes, scales and zero points.</summary>
    private static void Sweep(GptqPlan plan, ReadOnlySpan<float> weights, byte[] q, float[] scales, int[] zeros)
    {
        int n = plan.Cols, rows = plan.Rows, group = plan.Group, groups = plan.Groups, maxq = plan.MaxQ, block = plan.Block;
        bool sym = plan.Symmetric, mse = plan.MseGrid, staticGroups = plan.StaticGroups;
        var dead = plan.Dead;
        var perm = plan.Perm;
        var w32 = weights.ToArray();
        var uu = plan.U;

        Parallel.For(0, rows, () => (W: new double[n], Err: new double[block]), (r, _, s) =>
        {
            var w = s.W;
            for (int i = 0; i < n; i++)
            {
                int c = perm?[i] ?? i;
                w[i] = dead[c] ? 0 : w32[r * n + c];
            }
            float scale = 1; int zero = 0;
            if (staticGroups)
            {
                // Groups of consecutive original columns, fitted once on the original weights.
                var original = new double[n];
                for (int c = 0; c < n; c++) original[c] = dead[c] ? 0 : w32[r * n + c];
                for (int g = 0; g < groups; g++)
                    (scales[r * groups + g], zeros[r * groups + g]) = GptqGrid.Fit(original.AsSpan(g * group, Math.Min(group, n - g * group)), maxq, sym, mse);
            }
            for (int b0 = 0; b0 < n; b0 += block)
            {
                int b1 = Math.Min(b0 + block, n);
                for (int i = b0; i < b1; i++)
                {
                    if (staticGroups)
                    {
                        int g = r * groups + perm![i] / group;
                        (scale, zero) = (scales[g], zeros[g]);
                    }
                    else if (i % group == 0)
                    {
                        (scale, zero) = GptqGrid.Fit(w.AsSpan(i, Math.Min(group, n - i)), maxq, sym, mse);
                        scales[r * groups + i / group] = scale;
                        zeros[r * groups + i / group] = zero;
                    }
                    int qi = GptqGrid.Quantize(w[i], scale, zero, maxq);
                    q[r * n + (perm?[i] ?? i)] = (byte)qi;
                    double e = (w[i] - (double)scale * (qi - zero)) / uu[i * n + i];
                    s.Err[i - b0] = e;
                    // Inside the block (or everywhere in the reference) the correction is immediate.
                    GptqHessian.Axpy(w.AsSpan(i + 1, b1 - i - 1), -e, uu.AsSpan(i * n + i + 1, b1 - i - 1));
                }
                // Lazy batch update of all later blocks: w[b1..] −= Σ_i e_i · U[i, b1..].
                if (b1 < n)
                    for (int i = b0; i < b1; i++)
                        GptqHessian.Axpy(w.AsSpan(b1, n - b1), -s.Err[i - b0], uu.AsSpan(i * n + b1, n - b1));
            }
            return s;
        }, _ => { });
    }
}
