using System.Numerics.Tensors;

namespace QuantServe.Engine.Quantization.Methods;

/// <summary>
/// The two AWQ searches on one group of linear layers sharing an input X (weights W, row-major, rows × cols), both measured
/// by the output error through the input's second moment <c>H = Σ_t x_t x_tᵀ</c> (cols × cols):
/// <c>‖ΔW·X‖² = Σ_r Δ_r · H · Δ_rᵀ</c>, exact for the calibration tokens H was summed over, at a cost independent of
/// their number.
/// </summary>
public static class AwqSearch
{
    /// <summary>
    /// Per-channel scales for exponent <paramref name="alpha"/>: <c>s_c = max(m_c^α, 10⁻⁴)</c> with m the mean |x| per input
    /// channel (duo scaling: <c>max(m_c^α / (ŵ_c^(1−α) + 10⁻⁴), 10⁻⁴)</c>), then divided by <c>√(max s · min s)</c> as AutoAWQ
    /// does, so the scales centre on 1.
    /// </summary>
    public static float[] Scales(ReadOnlySpan<float> xMean, ReadOnlySpan<float> wMean, double alpha, bool duo)
    {
        var s = new float[xMean.Length];
        double max = double.NegativeInfinity, min = double.PositiveInfinity;
        for (int c = 0; c < s.Length; c++)
        {
            double v = Math.Pow(xMean[c], alpha);
            if (duo) v /= Math.Pow(wMean[c], 1 - alpha) + 1e-4;
            v = Math.Max(v, 1e-4);
            s[c] = (float)v;
            max = Math.Max(max, s[c]);
            min = Math.Min(min, s[c]);
        }
        float norm = (float)Math.Sqrt(max * min);
        for (int c = 0; c < s.Length; c++) s[c] /= norm;
        return s;
    }

    /// <summary>
    /// AutoAWQ's weight magnitude per input channel: |w| divided by its group's max |w| (+10⁻⁶), averaged over the rows.
    /// </summary>
    public static float[] WeightMean(float[] w, int rows, int cols, int groupSize)
    {
        var sum = new double[cols];
        for (int r = 0; r < rows; r++)
        {
            var row = w.AsSpan(r * cols, cols);
            for (int g0 = 0; g0 < cols; g0 += groupSize)
            {
                var grp = row.Slice(g0, Math.Min(groupSize, cols - g0));
                float amax = TensorPrimitives.MaxMagnitude(grp);
                amax = MathF.Abs(amax) + 1e-6f;
                for (int j = 0; j < grp.Length; j++) sum[g0 + j] += MathF.Abs(grp[j]) / amax;
            }
        }
        var mean = new float[cols];
        for (int c = 0; c < cols; c++) mean[c] = (float)(sum[c] / rows);
        return mean;
    }

    /// <summary>
    /// The output error <c>Σ_r Δ_r H Δ_rᵀ</c> of quantizing W·diag(s) on the grid and scaling back:
    /// <c>Δ = Q(W·diag(s))·diag(1/s) − W</c>, rows in parallel.
    /// </summary>
    public static double ScaledError(float[] w, int rows, int cols, float[] h, ReadOnlySpan<float> s, AwqOptions o)
    {
        var sc = s.ToArray();
        double total = 0;
        object gate = new();
        Parallel.For(0, rows, new ParallelOptions { MaxDegreeOfParallelism = o.Parallelism },
            () => (Buf: new float[cols * 2], Codes: new byte[Math.Min(o.GroupSize, cols)], Sum: 0.0),
            (r, _, local) =>
            {
                var row = w.AsSpan(r * cols, cols);
                var scaled = local.Buf.AsSpan(0, cols);
                var delta = local.Buf.AsSpan(cols, cols);
                TensorPrimitives.Multiply(row, sc, scaled);
                for (int g0 = 0; g0 < cols; g0 += o.GroupSize)
                {
                    int n = Math.Min(o.GroupSize, cols - g0);
                    AwqGrid.RoundTrip(scaled.Slice(g0, n), float.PositiveInfinity, o.MaxQ, delta.Slice(g0, n), local.Codes);
                }
                TensorPrimitives.Divide(delta, sc, delta);
                TensorPrimitives.Subtract(delta, row, delta);
                local.Sum += Quadratic(h, cols, delta, 0, cols);
                return local;
            },
            local => { lock (gate) total += local.Sum; });
        return total;
    }

    /// <summary>The best α of the grid (<see cref="AwqOptions.Grid"/> steps, or the fixed one) with its scales and error,
    /// and the error at α = 0 (round-to-nearest).</summary>
    public static (double Alpha, float[] Scales, double Error, double RtnError) SearchScales(float[] w, int rows, int cols, float[] h,
        float[] xMean, AwqOptions o)
    {
        var wMean = o.DuoScaling ? WeightMean(w, rows, cols, o.GroupSize) : xMean;
        double[] alphas = o.FixedAlpha is { } fixedAlpha ? [fixedAlpha] : Enumerable.Range(0, o.Grid).Select(i => i / (double)o.Grid).ToArray();
        double bestAlpha = alphas[0], best = double.PositiveInfinity, rtn = double.NaN;
        float[]? bestScales = null;
        foreach (double a in alphas)
        {
            var s = Scales(xMean, wMean, a, o.DuoScaling);
            double e = ScaledError(w, rows, cols, h, s, o);
            if (a == 0) rtn = e;
            if (e < best) { best = e; bestAlpha = a; bestScales = s; }
        }
        return (bestAlpha, bestScales ?? Scales(xMean, wMean, bestAlpha, o.DuoScaling), best, rtn);
    }

    /// <summary>
    /// AutoAWQ's clipping search on scaled weights whose input second moment is <paramref name="h"/>: per row and group,
    /// the clip c = max|w|·(1 − i / ClipGrid), i &lt; ClipGrid·MaxShrink, minimizing the group's own output error
    /// <c>Δ_g H_gg Δ_gᵀ</c> with <c>Δ = Q(clamp(w, −c, c)) − w</c>. Returns rows × groups clips (+∞ where none helps).
    /// </summary>
    public static float[] SearchClip(float[] w, int rows, int cols, float[] h, AwqOptions o)
    {
        int groups = (cols + o.GroupSize - 1) / o.GroupSize;
        int steps = Math.Max(1, (int)(o.ClipGrid * o.MaxShrink));
        var clips = new float[rows * groups];
        Parallel.For(0, rows, new ParallelOptions { MaxDegreeOfParallelism = o.Parallelism },
            () => (Delta: new float[o.GroupSize], Codes: new byte[o.GroupSize]),
            (r, _, local) =>
            {
                for (int g = 0; g < groups; g++)
                {
                    int g0 = g * o.GroupSize, n = Math.Min(o.GroupSize, cols - g0);
                    var wg = w.AsSpan(r * cols + g0, n);
                    var delta = local.Delta.AsSpan(0, n);
                    float amax = MathF.Abs(TensorPrimitives.MaxMagnitude(wg));
                    float bestClip = float.PositiveInfinity;
                    double best = double.PositiveInfinity;
                    for (int i = 0; i < steps; i++)
                    {
                        float clip = i == 0 ? float.PositiveInfinity : (float)(amax * (1 - i / (double)o.ClipGrid));
                        AwqGrid.RoundTrip(wg, clip, o.MaxQ, delta, local.Codes);
                        TensorPrimitives.Subtract(delta, wg, delta);
                        double e = Quadratic(h, cols, delta, g0, n);
                        if (e < best) { best = e; bestClip = clip; }
                    }
                    clips[r * groups + g] = bestClip;
                }
                return local;
            },
            _ => { });
        return clips;
    }

    /// <summary><c>Σ_{i,j} d_i H[o+i, o+j] d_j</c> over the block of <paramref name="h"/> at offset <paramref name="o"/>.</summary>
    internal static double Quadratic(float[] h, int cols, ReadOnlySpan<float> d, int o, int n)
    {
        double e = 0;
        for (int i = 0; i < n; i++)
        {
            float di = d[i];
            if (di == 0) continue;
            e += di * (double)TensorPrimitives.Dot(h.AsSpan((o + i) * cols + o, n), d);
        }
        return e;
    }

    /// <summary>Quantizes rows × cols scaled weights with per-(row, group) clips (null: none) into an <see cref="AwqMatrix"/>.</summary>
    public static AwqMatrix Quantize(float[] w, int rows, int cols, float[]? clips, AwqOptions o)
    {
        int groups = (cols + o.GroupSize - 1) / o.GroupSize;
        var q = new byte[rows * cols];
        var scales = new float[rows * groups];
        var zeros = new byte[rows * groups];
        Parallel.For(0, rows, new ParallelOptions { MaxDegreeOfParallelism = o.Parallelism }, r =>
        {
            for (int g = 0; g < groups; g++)
            {
                int g0 = g * o.GroupSize, n = Math.Min(o.GroupSize, cols - g0);
                float clip = clips?[r * groups + g] ?? float.PositiveInfinity;
                var (s, z) = AwqGrid.Quantize(w.AsSpan(r * cols + g0, n), clip, o.MaxQ, q.AsSpan(r * cols + g0, n));
                scales[r * groups + g] = s;
                zeros[r * groups + g] = z;
            }
        });
        return new AwqMatrix(o.Bits, o.GroupSize, rows, cols, q, scales, zeros);
    }
}
