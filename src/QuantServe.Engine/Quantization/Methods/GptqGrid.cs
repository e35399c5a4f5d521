namespace QuantServe.Engine.Quantization.Methods;

/// <summary>
/// AutoGPTQ's per-row min/max grid for a group of weights x: <c>lo = min(min x, 0)</c>, <c>hi = max(max x, 0)</c>;
/// symmetric: <c>hi = max(|lo|, hi)</c>, <c>lo = −hi</c> when lo &lt; 0; an all-zero group uses [−1, 1];
/// <c>scale = (hi − lo) / maxq</c>; zero = <c>(maxq + 1) / 2</c> (symmetric) or <c>round(−lo / scale)</c>.
/// A value quantizes to <c>q = clamp(round(x / scale) + zero, 0, maxq)</c> and dequantizes to <c>scale · (q − zero)</c>.
/// </summary>
public static class GptqGrid
{
    /// <summary>Scale and zero point of <paramref name="x"/>.</summary>
    public static (float Scale, int Zero) Fit(ReadOnlySpan<double> x, int maxq, bool symmetric)
    {
        double lo = 0, hi = 0;
        foreach (double v in x) { if (v < lo) lo = v; if (v > hi) hi = v; }
        if (symmetric)
        {
            hi = Math.Max(-lo, hi);
            if (lo < 0) lo = -hi;
        }
        if (lo == 0 && hi == 0) { lo = -1; hi = 1; }
        float scale = (float)((hi - lo) / maxq);
        int zero = symmetric ? (maxq + 1) / 2 : (int)Math.Round(-lo / scale, MidpointRounding.ToEven);
        return (scale, zero);
    }

    /// <summary>The grid index of <paramref name="x"/>.</summary>
    public static int Quantize(double x, float scale, int zero, int maxq)
        => Math.Clamp((int)Math.Round(x / scale, MidpointRounding.ToEven) + zero, 0, maxq);
}
