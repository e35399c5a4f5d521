using static QuantServe.Engine.Quantization.Formats.KQuantMath;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>
/// ggml's k-quant scale searches (make_qx_quants, make_q3_quants, make_qkx2_quants, make_qkx3_quants, make_qp_quants).
/// Every expression keeps ggml's float evaluation order, so the chosen levels and scales are bit-identical to llama.cpp's.
/// </summary>
internal static unsafe class KQuantSearch
{
    /// <summary>
    /// Symmetric search (make_qx_quants): levels L[i] = nmax + clamp(round(x[i]/s), -nmax, nmax-1), s chosen among
    /// 19 candidate inverse scales −(nmax + 0.1·is)/max (is = −9..9) to maximise (Σw·x·l)²/Σw·l², with w = qw[i] when
    /// given (importance) else x[i]² (rmseType 1). Returns s = Σw·x·l / Σw·l².
    /// </summary>
    public static float MakeQxQuants(int n, int nmax, float* x, sbyte* L, int rmseType, float* qw)
    {
        float max = 0, amax = 0;
        for (int i = 0; i < n; ++i)
        {
            float ax = MathF.Abs(x[i]);
            if (ax > amax) { amax = ax; max = x[i]; }
        }
        if (amax < GroupMaxEps)
        {
            for (int i = 0; i < n; ++i) L[i] = 0;
            return 0f;
        }
        float iscale = -nmax / max;
        if (rmseType == 0)
        {
            for (int i = 0; i < n; ++i)
            {
                int l = NearestInt(iscale * x[i]);
                L[i] = (sbyte)(nmax + Math.Max(-nmax, Math.Min(nmax - 1, l)));
            }
            return 1 / iscale;
        }
        bool returnEarly = false;
        if (rmseType < 0) { rmseType = -rmseType; returnEarly = true; }
        float sumlx = 0, suml2 = 0;
        for (int i = 0; i < n; ++i)
        {
            int l = NearestInt(iscale * x[i]);
            l = Math.Max(-nmax, Math.Min(nmax - 1, l));
            L[i] = (sbyte)(l + nmax);
            float w = Weight(qw, x, i, rmseType);
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        float scale = suml2 != 0 ? sumlx / suml2 : 0f;
        if (returnEarly) return suml2 > 0 ? 0.5f * (scale + 1 / iscale) : 1 / iscale;
        float best = scale * sumlx;
        for (int step = -9; step <= 9; ++step)
        {
            if (step == 0) continue;
            iscale = -(nmax + 0.1f * step) / max;
            sumlx = suml2 = 0;
            for (int i = 0; i < n; ++i)
            {
                int l = NearestInt(iscale * x[i]);
                l = Math.Max(-nmax, Math.Min(nmax - 1, l));
                float w = Weight(qw, x, i, rmseType);
                sumlx += w * x[i] * l;
                suml2 += w * l * l;
            }
            if (suml2 > 0 && sumlx * sumlx > best * suml2)
            {
                for (int i = 0; i < n; ++i)
                {
                    int l = NearestInt(iscale * x[i]);
                    L[i] = (sbyte)(nmax + Math.Max(-nmax, Math.Min(nmax - 1, l)));
                }
                scale = sumlx / suml2;
                best = scale * sumlx;
            }
        }
        return scale;
    }

    private static float Weight(float* qw, float* x, int i, int rmseType)
    {
        if (qw != null) return qw[i];
        return rmseType switch
        {
            1 => x[i] * x[i],
            2 => 1,
            3 => MathF.Abs(x[i]),
            _ => MathF.Sqrt(MathF.Abs(x[i])),
        };
    }

    /// <summary>
    /// Q3_K's symmetric search (make_q3_quants): start from round(−nmax·x/max), then up to 5 coordinate-descent passes
    /// that move single levels while (Σw·x·l)²/Σw·l² (w = x²) increases. Levels are stored offset by nmax.
    /// </summary>
    public static float MakeQ3Quants(int n, int nmax, float* x, sbyte* L, bool doRmse)
    {
        float max = 0, amax = 0;
        for (int i = 0; i < n; ++i)
        {
            float ax = MathF.Abs(x[i]);
            if (ax > amax) { amax = ax; max = x[i]; }
        }
        if (amax < GroupMaxEps)
        {
            for (int i = 0; i < n; ++i) L[i] = 0;
            return 0f;
        }
        float iscale = -nmax / max;
        if (doRmse)
        {
            float sumlx = 0, suml2 = 0;
            for (int i = 0; i < n; ++i)
            {
                int l = NearestInt(iscale * x[i]);
                l = Math.Max(-nmax, Math.Min(nmax - 1, l));
                L[i] = (sbyte)l;
                float w = x[i] * x[i];
                sumlx += w * x[i] * l;
                suml2 += w * l * l;
            }
            for (int itry = 0; itry < 5; ++itry)
            {
                int nChanged = 0;
                for (int i = 0; i < n; ++i)
                {
                    float w = x[i] * x[i];
                    float slx = sumlx - w * x[i] * L[i];
                    if (slx > 0)
                    {
                        float sl2 = suml2 - w * L[i] * L[i];
                        int newL = NearestInt(x[i] * sl2 / slx);
                        newL = Math.Max(-nmax, Math.Min(nmax - 1, newL));
                        if (newL != L[i])
                        {
                            slx += w * x[i] * newL;
                            sl2 += w * newL * newL;
                            if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2)
                            {
                                L[i] = (sbyte)newL; sumlx = slx; suml2 = sl2;
                                ++nChanged;
                            }
                        }
                    }
                }
                if (nChanged == 0) break;
            }
            for (int i = 0; i < n; ++i) L[i] += (sbyte)nmax;
            return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
        }
        for (int i = 0; i < n; ++i)
        {
            int l = NearestInt(iscale * x[i]);
            l = Math.Max(-nmax, Math.Min(nmax - 1, l));
            L[i] = (sbyte)(l + nmax);
        }
        return 1 / iscale;
    }

    /// <summary>
    /// Asymmetric search (make_qkx2_quants): x ≈ s·l − m with l in 0..nmax, m ≥ 0. Tries inverse scales
    /// (rmin + rdelta·is + nmax)/(max − min) for is = 0..nstep, solving the weighted least-squares (s, m) for each level
    /// assignment and keeping the one with the least Σw·err (err = |d| if useMad else d²). Returns s; m goes to theMin.
    /// </summary>
    public static float MakeQkx2Quants(int n, int nmax, float* x, float* weights, byte* L, out float theMin, byte* Laux,
        float rmin, float rdelta, int nstep, bool useMad)
    {
        float min = x[0], max = x[0];
        float sumW = weights[0];
        float sumX = sumW * x[0];
        for (int i = 1; i < n; ++i)
        {
            if (x[i] < min) min = x[i];
            if (x[i] > max) max = x[i];
            float w = weights[i];
            sumW += w;
            sumX += w * x[i];
        }
        if (min > 0) min = 0;
        if (max == min)
        {
            for (int i = 0; i < n; ++i) L[i] = 0;
            theMin = -min;
            return 0f;
        }
        float iscale = nmax / (max - min);
        float scale = 1 / iscale;
        float bestError = 0;
        for (int i = 0; i < n; ++i)
        {
            int l = NearestInt(iscale * (x[i] - min));
            L[i] = (byte)Math.Max(0, Math.Min(nmax, l));
            float diff = scale * L[i] + min - x[i];
            diff = useMad ? MathF.Abs(diff) : diff * diff;
            bestError += weights[i] * diff;
        }
        if (nstep < 1)
        {
            theMin = -min;
            return scale;
        }
        for (int step = 0; step <= nstep; ++step)
        {
            iscale = (rmin + rdelta * step + nmax) / (max - min);
            float sumL = 0, sumL2 = 0, sumXL = 0;
            for (int i = 0; i < n; ++i)
            {
                int l = NearestInt(iscale * (x[i] - min));
                l = Math.Max(0, Math.Min(nmax, l));
                Laux[i] = (byte)l;
                float w = weights[i];
                sumL += w * l;
                sumL2 += w * l * l;
                sumXL += w * l * x[i];
            }
            float D = sumW * sumL2 - sumL * sumL;
            if (D > 0)
            {
                float thisScale = (sumW * sumXL - sumX * sumL) / D;
                float thisMin = (sumL2 * sumX - sumL * sumXL) / D;
                if (thisMin > 0)
                {
                    thisMin = 0;
                    thisScale = sumXL / sumL2;
                }
                float curError = 0;
                for (int i = 0; i < n; ++i)
                {
                    float diff = thisScale * Laux[i] + thisMin - x[i];
                    diff = useMad ? MathF.Abs(diff) : diff * diff;
                    curError += weights[i] * diff;
                }
                if (curError < bestError)
                {
                    for (int i = 0; i < n; ++i) L[i] = Laux[i];
                    bestError = curError;
                    scale = thisScale;
                    min = thisMin;
                }
            }
        }
        theMin = -min;
        return scale;
    }

    /// <summary>
    /// make_qkx3_quants, the importance-weighted variant of <see cref="MakeQkx2Quants"/> used by llama.cpp's imatrix path:
    /// weights default to x² and levels are guarded against an infinite or out-of-range inverse scale.
    /// </summary>
    public static float MakeQkx3Quants(int n, int nmax, float* x, float* weights, byte* L, out float theMin, byte* Laux,
        float rmin, float rdelta, int nstep, bool useMad)
    {
        float min = x[0], max = x[0];
        float sumW = weights != null ? weights[0] : x[0] * x[0];
        float sumX = sumW * x[0];
        for (int i = 1; i < n; ++i)
        {
            if (x[i] < min) min = x[i];
            if (x[i] > max) max = x[i];
            float w = weights != null ? weights[i] : x[i] * x[i];
            sumW += w;
            sumX += w * x[i];
        }
        if (min > 0) min = 0;
        if (max <= min)
        {
            for (int i = 0; i < n; ++i) L[i] = 0;
            theMin = -min;
            return 0f;
        }
        float iscale = nmax / (max - min);
        float scale = 1 / iscale;
        float bestMad = 0;
        for (int i = 0; i < n; ++i)
        {
            int l = NearestInt(iscale * (x[i] - min));
            L[i] = (byte)Math.Max(0, Math.Min(nmax, l));
            float diff = scale * L[i] + min - x[i];
            diff = useMad ? MathF.Abs(diff) : diff * diff;
            float w = weights != null ? weights[i] : x[i] * x[i];
            bestMad += w * diff;
        }
        if (nstep < 1)
        {
            theMin = -min;
            return scale;
        }
        for (int step = 0; step <= nstep; ++step)
        {
            iscale = (rmin + rdelta * step + nmax) / (max - min);
            float sumL = 0, sumL2 = 0, sumXL = 0;
            for (int i = 0; i < n; ++i)
            {
                float v = iscale * (x[i] - min);
                int l = v > 0 ? NearestInt(MathF.Min(v, nmax)) : 0;
                Laux[i] = (byte)l;
                float w = weights != null ? weights[i] : x[i] * x[i];
                sumL += w * l;
                sumL2 += w * l * l;
                sumXL += w * l * x[i];
            }
            float D = sumW * sumL2 - sumL * sumL;
            if (D > 0)
            {
                float thisScale = (sumW * sumXL - sumX * sumL) / D;
                float thisMin = (sumL2 * sumX - sumL * sumXL) / D;
                if (thisMin > 0)
                {
                    thisMin = 0;
                    thisScale = sumXL / sumL2;
                }
                float mad = 0;
                for (int i = 0; i < n; ++i)
                {
                    float diff = thisScale * Laux[i] + thisMin - x[i];
                    diff = useMad ? MathF.Abs(diff) : diff * diff;
                    float w = weights != null ? weights[i] : x[i] * x[i];
                    mad += w * diff;
                }
                if (mad < bestMad)
                {
                    for (int i = 0; i < n; ++i) L[i] = Laux[i];
                    bestMad = mad;
                    scale = thisScale;
                    min = thisMin;
                }
            }
        }
        theMin = -min;
        return scale;
    }

    /// <summary>
    /// make_qp_quants: quantizes non-negative values (sub-block scales or mins) to 0..nmax with importance weights,
    /// trying 8 nearby inverse scales then refining single levels; returns the fitted scale.
    /// </summary>
    public static float MakeQpQuants(int n, int nmax, float* x, byte* L, float* quantWeights)
    {
        float max = 0;
        for (int i = 0; i < n; ++i) max = MathF.Max(max, x[i]);
        if (max < GroupMaxEps)
        {
            for (int i = 0; i < n; ++i) L[i] = 0;
            return 0f;
        }
        float iscale = nmax / max;
        for (int i = 0; i < n; ++i) L[i] = (byte)NearestInt(iscale * x[i]);
        float scale = 1 / iscale;
        float bestMse = 0;
        for (int i = 0; i < n; ++i)
        {
            float diff = x[i] - scale * L[i];
            bestMse += quantWeights[i] * diff * diff;
        }
        for (int step = -4; step <= 4; ++step)
        {
            if (step == 0) continue;
            float iscaleIs = (0.1f * step + nmax) / max;
            float scaleIs = 1 / iscaleIs;
            float mse = 0;
            for (int i = 0; i < n; ++i)
            {
                int l = Math.Min(nmax, NearestInt(iscaleIs * x[i]));
                float diff = x[i] - scaleIs * l;
                mse += quantWeights[i] * diff * diff;
            }
            if (mse < bestMse)
            {
                bestMse = mse;
                iscale = iscaleIs;
            }
        }
        float sumlx = 0, suml2 = 0;
        for (int i = 0; i < n; ++i)
        {
            int l = Math.Min(nmax, NearestInt(iscale * x[i]));
            L[i] = (byte)l;
            float w = quantWeights[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        for (int itry = 0; itry < 5; ++itry)
        {
            int nChanged = 0;
            for (int i = 0; i < n; ++i)
            {
                float w = quantWeights[i];
                float slx = sumlx - w * x[i] * L[i];
                float sl2 = suml2 - w * L[i] * L[i];
                if (slx > 0 && sl2 > 0)
                {
                    int newL = Math.Min(nmax, NearestInt(x[i] * sl2 / slx));
                    if (newL != L[i])
                    {
                        slx += w * x[i] * newL;
                        sl2 += w * newL * newL;
                        if (slx * slx * suml2 > sumlx * sumlx * sl2)
                        {
                            L[i] = (byte)newL; sumlx = slx; suml2 = sl2;
                            ++nChanged;
                        }
                    }
                }
            }
            if (nChanged == 0) break;
        }
        return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
    }
}
