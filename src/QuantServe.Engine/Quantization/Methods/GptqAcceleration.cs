namespace QuantServe.Engine.Quantization.Methods;

/// <summary>
/// One matrix prepared for GPTQ's column sweep: processing position i handles original column <see cref="Perm"/>[i]
/// (identity when null); dead columns (H_jj = 0) are quantized as weight 0; <see cref="U"/> is the upper Cholesky factor
/// of the dampened, permuted H⁻¹ (row-major <see cref="Cols"/>², double); groups of <see cref="Group"/> columns in
/// processing order (or, with <see cref="StaticGroups"/>, of original columns); lazy updates every <see cref="Block"/>
/// columns.
/// </summary>
public sealed record GptqPlan(int Rows, int Cols, bool[] Dead, int[]? Perm, double[] U, int Group, int Groups, int MaxQ,
    bool Symmetric, bool MseGrid, bool StaticGroups, int Block);

/// <summary>Sums GPTQ's input Hessian <c>H = 2/N · Σ_t x_t x_tᵀ</c> over calibration tokens (CPU: <see cref="GptqHessian"/>).</summary>
public interface IGptqHessian : IDisposable
{
    /// <summary>Input width.</summary>
    int Columns { get; }

    /// <summary>Tokens accumulated.</summary>
    long Count { get; }

    /// <summary>Adds <paramref name="tokens"/> input rows (row-major, <see cref="Columns"/> wide).</summary>
    void Add(ReadOnlySpan<float> rows, int tokens);

    /// <summary>The full symmetric matrix 2/N · Σ x xᵀ, row-major (zero when nothing was added).</summary>
    double[] ToMatrix();
}

/// <summary>
/// Where GPTQ's heavy loops can run instead of the CPU (a GPU): the Hessian accumulation and the per-row column sweep
/// (in-block quantize / error / propagate and the lazy trailing update). Preparation (dead columns, act-order permutation,
/// dampening, Cholesky factor of H⁻¹) stays on the CPU.
/// </summary>
public interface IGptqAccelerator
{
    /// <summary>What runs the work, for log lines (e.g. <c>cuda:0 NVIDIA H100</c>).</summary>
    string Name { get; }

    /// <summary>A Hessian accumulator for inputs of <paramref name="columns"/> features.</summary>
    IGptqHessian CreateHessian(int columns);

    /// <summary>
    /// Runs the column sweep of <paramref name="plan"/> over row-major <paramref name="weights"/>, writing codes (original
    /// column order), per-row group scales and zero points exactly as the CPU sweep lays them out. False (nothing written)
    /// when this accelerator does not take the plan, and the caller runs the CPU sweep.
    /// </summary>
    bool TrySweep(GptqPlan plan, ReadOnlySpan<float> weights, byte[] q, float[] scales, int[] zeros);
}
