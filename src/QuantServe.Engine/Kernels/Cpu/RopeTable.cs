using QuantServe.Engine.Models;

namespace QuantServe.Engine.Kernels.Cpu;

/// <summary>
/// Rotary position embedding with cos/sin precomputed once per position. For pair i in [0, head_dim/2) at position p:
/// <c>θ_i = (p / scale) · base^(−2i/head_dim) / factor_i</c> (factor_i = 1 unless frequency factors are given), and the pair (a, b) becomes (a·cos θ_i − b·sin θ_i, a·sin θ_i + b·cos θ_i).
/// <see cref="RopeStyle.Interleaved"/> pairs dimensions (2i, 2i+1); <see cref="RopeStyle.Neox"/> pairs (i, i + head_dim/2).
/// Angles are computed in double precision and stored as floats.
/// </summary>
public sealed class RopeTable
{
    private readonly float[] _cos;
    private readonly float[] _sin;
    private readonly int _half;

    /// <summary>Tables for positions [0, <paramref name="positions"/>); <paramref name="frequencyFactors"/> (head_dim / 2
    /// values, or null) divide each pair's frequency, as <see cref="ModelConfig.RopeFrequencyFactors"/> defines.</summary>
    public RopeTable(int headDim, int positions, float theta, float scale, RopeStyle style, float[]? frequencyFactors = null)
    {
        if (frequencyFactors != null && frequencyFactors.Length != headDim / 2)
            throw new ArgumentException($"RoPE: {frequencyFactors.Length} frequency factors for head_dim {headDim}", nameof(frequencyFactors));
        if (headDim <= 0 || headDim % 2 != 0) throw new ArgumentOutOfRangeException(nameof(headDim), headDim, "head_dim must be positive and even");
        HeadDim = headDim;
        Positions = positions;
        Style = style;
        _half = headDim / 2;
        _cos = new float[(long)positions * _half];
        _sin = new float[(long)positions * _half];
        var freq = new double[_half];
        for (int i = 0; i < _half; i++) freq[i] = Math.Pow(theta, -2.0 * i / headDim) / (frequencyFactors?[i] ?? 1.0);
        for (int p = 0; p < positions; p++)
            for (int i = 0; i < _half; i++)
            {
                double angle = p / (double)scale * freq[i];
                _cos[(long)p * _half + i] = (float)Math.Cos(angle);
                _sin[(long)p * _half + i] = (float)Math.Sin(angle);
            }
    }

    /// <summary>Width of a head.</summary>
    public int HeadDim { get; }

    /// <summary>Number of positions tabulated.</summary>
    public int Positions { get; }

    /// <summary>Pairing layout.</summary>
    public RopeStyle Style { get; }

    /// <summary>Rotates every head of <paramref name="vector"/> (heads × head_dim, contiguous) in place for <paramref name="position"/>.</summary>
    public void Apply(Span<float> vector, int position)
    {
        if ((uint)position >= (uint)Positions) throw new ArgumentOutOfRangeException(nameof(position), position, $"RoPE table covers positions [0, {Positions})");
        if (vector.Length % HeadDim != 0) throw new ArgumentException($"RoPE: vector of {vector.Length} is not a whole number of {HeadDim}-wide heads");
        var cos = new ReadOnlySpan<float>(_cos, position * _half, _half);
        var sin = new ReadOnlySpan<float>(_sin, position * _half, _half);
        for (int h = 0; h < vector.Length; h += HeadDim)
        {
            var head = vector.Slice(h, HeadDim);
            if (Style == RopeStyle.Interleaved)
                for (int i = 0; i < _half; i++)
                {
                    float a = head[2 * i], b = head[2 * i + 1];
                    head[2 * i] = a * cos[i] - b * sin[i];
                    head[2 * i + 1] = a * sin[i] + b * cos[i];
                }
            else
                for (int i = 0; i < _half; i++)
                {
                    float a = head[i], b = head[i + _half];
                    head[i] = a * cos[i] - b * sin[i];
                    head[i + _half] = a * sin[i] + b * cos[i];
                }
        }
    }
}
