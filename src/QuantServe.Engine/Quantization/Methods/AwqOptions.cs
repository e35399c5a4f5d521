namespace QuantServe.Engine.Quantization.Methods;

/// <summary>AWQ settings (AutoAWQ's names in parentheses).</summary>
public sealed record AwqOptions
{
    /// <summary>Bits per weight: 3 or 4 (w_bit).</summary>
    public int Bits { get; init; } = 4;

    /// <summary>Input columns sharing one scale and zero point per row (q_group_size).</summary>
    public int GroupSize { get; init; } = 128;

    /// <summary>Steps of the scale-exponent search: α = i / Grid for i in 0 … Grid − 1 (n_grid).</summary>
    public int Grid { get; init; } = 20;

    /// <summary>
    /// AutoAWQ's duo_scaling: <c>s = mean|x|^α / (mean ŵ)^(1−α)</c> with ŵ the weight magnitude relative to its group's
    /// maximum; off: <c>s = mean|x|^α</c>.
    /// </summary>
    public bool DuoScaling { get; init; }

    /// <summary>Search a per-group clipping range after scaling (apply_clip); q and k are never clipped, as in AutoAWQ.</summary>
    public bool Clip { get; init; } = true;

    /// <summary>Clipping candidates shrink the group's max |w| by i / ClipGrid for i below ClipGrid · MaxShrink.</summary>
    public int ClipGrid { get; init; } = 20;

    /// <summary>Largest shrink of the clipping search (max_shrink).</summary>
    public double MaxShrink { get; init; } = 0.5;

    /// <summary>Calibration tokens (evenly strided over the set) whose inputs form the error estimate; the activation
    /// magnitudes use every token.</summary>
    public int MaxTokens { get; init; } = 4096;

    /// <summary>Use this α for every group instead of searching (α = 0 is round-to-nearest on the same grid).</summary>
    public double? FixedAlpha { get; init; }

    /// <summary>Fold the searched scales into the model but keep the weights in full precision (a check of the folding).</summary>
    public bool ScaleOnly { get; init; }

    /// <summary>Threads of the searches (0: one per core).</summary>
    public int Threads { get; init; }

    /// <summary>Largest code, 2^bits − 1.</summary>
    public int MaxQ => (1 << Bits) - 1;

    /// <summary>Throws on unsupported settings.</summary>
    public void Validate()
    {
        if (Bits is not (3 or 4)) throw new ArgumentException($"AWQ bits must be 3 or 4, not {Bits}");
        if (GroupSize <= 0) throw new ArgumentException($"AWQ group size must be positive, not {GroupSize}");
        if (Grid <= 0) throw new ArgumentException($"AWQ grid must be positive, not {Grid}");
        if (ClipGrid <= 0 || !(MaxShrink >= 0 && MaxShrink < 1)) throw new ArgumentException("AWQ clipping needs ClipGrid > 0 and MaxShrink in [0, 1)");
        if (MaxTokens <= 0) throw new ArgumentException($"AWQ token budget must be positive, not {MaxTokens}");
        if (FixedAlpha is { } a && !(a >= 0 && a <= 1)) throw new ArgumentException($"AWQ alpha must be in [0, 1], not {a}");
    }

    internal int Parallelism => Threads > 0 ? Threads : Environment.ProcessorCount;
}
