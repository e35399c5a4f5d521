using QuantServe.Engine.Models;

namespace QuantServe.Engine.Kernels.Cpu;

/// <summary>
/// Rotary position embedding with cos/sin precomputed once per position. For pair i in [0, head_dim/2) at position p:
/// <c>θ_i = (p / scale) · base^(−2i/head_dim) / factor_i</c> (factor_i = 1 unless frequency factors are given), and the pair (a, b) becomes (a·cos θ_i − b·sin θ_i, a·sin θ_i + b·cos θ_i).
/// <see cref="RopeStyle.Interleaved"/> pairs dimensions (2i, 2i+1); <see cref="RopeStyle.Neox"/> pairs (i, i + head_dim/2).
/// Angles are computed in double precision and stored as floats. Rows are tabulated on demand (doubling), so a model with
/// a 128K context does not pay for positions no request reaches; growth is thread-safe.
/// </summary>
public sealed class RopeTable
{
    private sealed record Rows(float[] Cos, float[] Sin, int Count);

    private readonly object _grow = new();
    private readonly double[] _frequencies;
    private readonly float _scale;
    private readonly int _half;
    private volatile Rows _rows;

    /// <summary>A table for positions [0, <paramref name="positions"/>); <paramref name="frequencyFactors"/> (head_dim / 2
    /// values, or null) divide each pair's frequency, as <see cref="ModelConfig.RopeFrequencyFactors"/> defines.</summary>
    public RopeTable(int headDim, int positions, float theta, float scale, RopeStyle style, float[]? frequencyFactors = null)
    {
        if (frequencyFactors != null && frequencyFactors.Length != headDim / 2)
            throw new ArgumentException($"RoPE: {frequencyFactors.Length} frequency factors for head_dim {headDim}", nameof(frequencyFactors));
        if (headDim <= 0 || headDim % 2 != 0) throw new ArgumentOutOfRangeException(nameof(headDim), headDim, "head_dim must be positive and even");
        if (positions <= 0) throw new ArgumentOutOfRangeException(nameof(positions), positions, "must be positive");
        HeadDim = headDim;
        Positions = positions;
        Style = style;
        _scale = scale;
        _half = headDim / 2;
        _frequencies = new double[_half];
        for (int i = 0; i < _half; i++) _frequencies[i] = Math.Pow(theta, -2.0 * i / headDim) / (frequencyFactors?[i] ?? 1.0);
        _rows = Tabulate(Math.Min(positions, 1024), null);
    }

    /// <summary>Width of a head.</summary>
    public int HeadDim { get; }

    /// <summary>Number of positions the table covers.</summary>
    public int Positions { get; }

    /// <summary>Pairing layout.</summary>
    public RopeStyle Style { get; }

    private Rows Tabulate(int count, Rows? previous)
    {
        var cos = new float[(long)count * _half];
        var sin = new float[(long)count * _half];
        int start = 0;
        if (previous != null)
        {
            previous.Cos.CopyTo(cos, 0);
            previous.Sin.CopyTo(sin, 0);
            start = previous.Count;
        }
        for (int p = start; p < count; p++)
            for (int i = 0; i < _half; i++)
            {
                double angle = p / (double)_scale * _frequencies[i];
                cos[(long)p * _half + i] = (float)Math.Cos(angle);
                sin[(long)p * _half + i] = (float)Math.Sin(angle);
            }
        return new Rows(cos, sin, count);
    }

    private Rows Cover(int position)
    {
        var rows = _rows;
        if (position < rows.Count) return rows;
        lock (_grow)
        {
            rows = _rows;
            if (position >= rows.Count)
                _rows = rows = Tabulate((int)Math.Min(Positions, Math.Max(position + 1L, 2L * rows.Count)), rows);
            return rows;
        }
    }

    /// <summary>Rotates every head of <paramref name="vector"/> (heads × head_dim, contiguous) in place for <paramref name="position"/>.</summary>
    public void Apply(Span<float> vector, int position)
    {
        if ((uint)position >= (uint)Positions) throw new ArgumentOutOfRangeException(nameof(position), position, $"RoPE table covers positions [0, {Positions})");
        if (vector.Length % HeadDim != 0) throw new ArgumentException($"RoPE: vector of {vector.Length} is not a whole number of {HeadDim}-wide heads");
        var rows = Cover(position);
        var cos = new ReadOnlySpan<float>(rows.Cos, position * _half, _half);
        var sin = new ReadOnlySpan<float>(rows.Sin, position * _half, _half);
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
