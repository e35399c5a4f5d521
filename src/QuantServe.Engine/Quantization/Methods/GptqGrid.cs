namespace QuantServe.Engine.Quantization.Methods;

/// <summary>
/// AutoGPTQ's per-row min/max grid for a group of weights x: <c>lo = min(min x, 0)</c>, <c>hi = max(max x, 0)</c>;
/// symmetric: <c>hi = max(|lo|, hi)</c>, <c>lo = −hi</c> when lo &lt; 0; an all-zero group uses [−1, 1];
/// <c>scale = (hi − lo) / maxq</c> rounded to float16; zero = <c>(maxq + 1) / 2</c> (symmetric) or <c>round(−lo / scale)</c>.
/// A value quantizes to <c>q = clamp(round(x / scale) + zero, 0, maxq)</c> and dequantizes to <c>scale · (q − zero)</c>.
/// </summary>
public static class GptqGrid
{
    /// <summary>Scale and zero point of <paramref name="x"/>.</summary>
    public static (float Scale, int Zero) Fit(ReadOnlySpan<double> x, int maxq, bool symmetric) => Fit(x, maxq, symmetric, mse: false);

    /// <summary>
    /// Scale and zero point of <paramref name="x"/>; with <paramref name="mse"/> the range is also shrunk, GPTQModel's
    /// <c>mse</c> search: for p = 1, 0.99, …, 0.20 the grid of <c>[p·lo, p·hi]</c> is tried and the one with the least
    /// <c>Σ |deq(q(x)) − x|^2.4</c> kept (clipping a few outliers buys a finer step for the rest).
    /// </summary>
    public static (float Scale, int Zero) Fit(ReadOnlySpan<double> x, int maxq, bool symmetric, bool mse)
    {
        double lo = 0, hi = 0;
        foreach (double v in x) { if (v < lo) lo = v; if (v > hi) hi = v; }
        if (symmetric)
        {
            hi = Math.Max(-lo, hi);
            if (lo < 0) lo = -hi;
        }
        if (lo == 0 && hi == 0) { lo = -1; hi = 1; }
        var best = Make(lo, hi, maxq, symmetric);
        if (!mse) return best;
        double bestErr = Error(x, best.Scale, best.Zero, maxq);
        for (int i = 1; i <= 80; i++)
        {
            double p = 1 - i / 100.0;
            var candidate = Make(p * lo, p * hi, maxq, symmetric);
            double err = Error(x, candidate.Scale, candidate.Zero, maxq);
            if (err < bestErr) { bestErr = err; best = candidate; }
        }
        return best;
    }

    private static double Error(ReadOnlySpan<double> x, float scale, int zero, int maxq)
    {
        double sum = 0;
        foreach (double v in x)
        {
            double d = Math.Abs((double)scale * (Quantize(v, scale, zero, maxq) - zero) - v);
            sum += Math.Pow(d, 2.4);
        }
        return sum;
    }

    /// <summary>Scale and zero point of the range [lo, hi] (lo ≤ 0 ≤ hi, not both 0); the scale is rounded to float16,
    /// the precision checkpoints store it in, so the weights GPTQ compensates for are exactly those saved.</summary>
    internal static (float Scale, int Zero) Make(double lo, double hi, int maxq, bool symmetric)
    {
        float scale = (float)(Half)((hi - lo) / maxq);
        if (!(scale > 0)) scale = (float)Half.Epsilon;
        int zero = symmetric ? (maxq + 1) / 2 : Math.Clamp((int)Math.Round(-lo / scale, MidpointRounding.ToEven), 0, maxq);
        return (scale, zero);
    }

    /// <summary>The grid index of <paramref name="x"/>.</summary>
    public static int Quantize(double x, float scale, int zero, int maxq)
        => Math.Clamp((int)Math.Round(x / scale, MidpointRounding.ToEven) + zero, 0, maxq);
}
