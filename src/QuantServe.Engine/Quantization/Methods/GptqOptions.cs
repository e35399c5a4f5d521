namespace QuantServe.Engine.Quantization.Methods;

/// <summary>GPTQ settings (AutoGPTQ's names in parentheses).</summary>
public sealed record GptqOptions
{
    /// <summary>Bits per weight: 2, 3, 4 or 8 (bits).</summary>
    public int Bits { get; init; } = 4;

    /// <summary>Columns sharing one scale/zero per row, or −1 for one group per row (group_size).</summary>
    public int GroupSize { get; init; } = 128;

    /// <summary>Symmetric grid: zero point fixed at 2^(bits−1) (sym).</summary>
    public bool Symmetric { get; init; } = true;

    /// <summary>Process columns in descending Hessian-diagonal order; groups follow that order, recorded in g_idx (desc_act).</summary>
    public bool ActOrder { get; init; }

    /// <summary>Dampening added to the Hessian diagonal as a fraction of its mean (damp_percent).</summary>
    public double Damp { get; init; } = 0.01;

    /// <summary>Search a clipped range per group for the least error (GPTQModel's <c>mse</c>; see <see cref="GptqGrid.Fit(ReadOnlySpan{double}, int, bool, bool)"/>).</summary>
    public bool MseGrid { get; init; } = true;

    /// <summary>
    /// With act-order, fit every group's scale and zero point up front from the original weights of consecutive columns
    /// (GPTQModel's <c>static_groups</c>), so g_idx stays <c>c / group</c> while columns are still processed in act order.
    /// </summary>
    public bool StaticGroups { get; init; }

    /// <summary>Columns per lazy-update block (rounded to a whole number of groups).</summary>
    public int BlockSize { get; init; } = 128;

    /// <summary>Largest quantized value, 2^bits − 1.</summary>
    public int MaxQ => (1 << Bits) - 1;

    /// <summary>Throws on unsupported settings.</summary>
    public void Validate()
    {
        if (Bits is not (2 or 3 or 4 or 8)) throw new ArgumentException($"GPTQ bits must be 2, 3, 4 or 8, not {Bits}");
        if (GroupSize == 0 || GroupSize < -1) throw new ArgumentException($"GPTQ group size must be -1 or positive, not {GroupSize}");
        if (!(Damp >= 0 && Damp < 1)) throw new ArgumentException($"GPTQ dampening must be in [0, 1), not {Damp}");
        if (BlockSize <= 0) throw new ArgumentException($"GPTQ block size must be positive, not {BlockSize}");
    }

    /// <summary>The lazy-update block width for <paramref name="cols"/> columns: a multiple of the group size.</summary>
    internal int EffectiveBlock(int cols)
    {
        if (GroupSize <= 0) return BlockSize;
        return GroupSize >= BlockSize ? GroupSize : GroupSize * (BlockSize / GroupSize);
    }
}
