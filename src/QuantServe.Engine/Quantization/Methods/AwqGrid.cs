namespace QuantServe.Engine.Quantization.Methods;

/// <summary>
/// AWQ's asymmetric min/max grid for one group of weights w, optionally clipped to [−c, c] first: with
/// <c>lo = min(min w, 0)</c>, <c>hi = max(max w, 0)</c> (range widened to contain 0, so every zero point fits the grid),
/// <c>scale = fp16((hi − lo) / maxq)</c> (rounded to half precision, the precision the AWQ GEMM layout stores),
/// <c>zero = clamp(round(−lo / scale), 0, maxq)</c>, <c>q = clamp(round(w / scale) + zero, 0, maxq)</c> (round half to
/// even); dequantized <c>scale · (q − zero)</c>. An all-zero group gets scale 0, zero 0 and codes 0.
/// </summary>
public static class AwqGrid
{
    /// <summary>Quantizes <paramref name="w"/> (clipped to ±<paramref name="clip"/>, which may be +∞) into <paramref name="codes"/>.</summary>
    public static (float Scale, byte Zero) Quantize(ReadOnlySpan<float> w, float clip, int maxq, Span<byte> codes)
    {
        float lo = 0, hi = 0;
        foreach (float v in w)
        {
            float x = Math.Clamp(v, -clip, clip);
            if (x < lo) lo = x;
            if (x > hi) hi = x;
        }
        float scale = (float)(Half)((hi - lo) / maxq);
        if (!(scale > 0))
        {
            codes[..w.Length].Clear();
            return (0, 0);
        }
        int zero = Math.Clamp((int)MathF.Round(-lo / scale, MidpointRounding.ToEven), 0, maxq);
        float inv = 1f / scale;
        for (int j = 0; j < w.Length; j++)
        {
            float x = Math.Clamp(w[j], -clip, clip);
            codes[j] = (byte)Math.Clamp((int)MathF.Round(x * inv, MidpointRounding.ToEven) + zero, 0, maxq);
        }
        return (scale, (byte)zero);
    }

    /// <summary>Quantizes and dequantizes <paramref name="w"/> into <paramref name="result"/> (see <see cref="Quantize"/>).</summary>
    public static void RoundTrip(ReadOnlySpan<float> w, float clip, int maxq, Span<float> result, Span<byte> scratch)
    {
        var (s, z) = Quantize(w, clip, maxq, scratch);
        for (int j = 0; j < w.Length; j++) result[j] = s * (scratch[j] - z);
    }
}
