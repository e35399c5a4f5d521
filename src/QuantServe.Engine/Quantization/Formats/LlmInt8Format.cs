using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using QuantServe.Engine.Kernels.Cpu;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>Outlier statistics of one <see cref="LlmInt8Format"/> matrix (its <see cref="WeightMatrix.State"/>); thread-safe.</summary>
public sealed class LlmInt8Outliers
{
    private long _columns, _vectors, _max;

    /// <summary>Total outlier columns over all activation vectors multiplied so far.</summary>
    public long Columns => Interlocked.Read(ref _columns);

    /// <summary>Activation vectors (tokens) multiplied so far.</summary>
    public long Vectors => Interlocked.Read(ref _vectors);

    /// <summary>Most outlier columns seen in one vector.</summary>
    public long MaxColumns => Interlocked.Read(ref _max);

    /// <summary>Mean outlier columns per vector (0 before the first).</summary>
    public double MeanColumns => Vectors == 0 ? 0 : (double)Columns / Vectors;

    internal void Add(int columns)
    {
        Interlocked.Add(ref _columns, columns);
        Interlocked.Increment(ref _vectors);
        long m;
        while (columns > (m = Interlocked.Read(ref _max)) && Interlocked.CompareExchange(ref _max, columns, m) != m) { }
    }
}

/// <summary>
/// LLM.int8 (Dettmers et al.; bitsandbytes <c>Linear8bitLt</c> with int8 weights): vector-wise int8 weights, one
/// scale per output row, <c>s = absmax / 127</c>, <c>q = round_half_even(x / s)</c>, dequantized as <c>q·s</c>.
/// <para>Row layout: float32 s, then the row's int8 codes, zero-padded to a multiple of 32.</para>
/// <para>At run time each activation vector (token) is split by magnitude: columns with <c>|x_c| &gt; threshold</c> (6.0)
/// are outliers and multiply in float; the other columns are quantized per token, <c>d = amax / 127</c>,
/// <c>a = round_half_even(x · 127 / amax)</c> (outliers set to 0). <c>y = s · (d · Σ_c q_c·a_c + Σ_{outliers} q_c·x_c)</c>,
/// the first sum exact in integers. As bitsandbytes does when it holds only int8 weights, the outlier columns' weights are
/// the int8 codes times the row scale (no separate fp16 copy). Outliers are chosen per token rather than per batch
/// (bitsandbytes takes a column as outlier when any row of the batch exceeds the threshold), so a token's result does
/// not depend on what it is batched with. The number of outlier columns is counted in <see cref="LlmInt8Outliers"/>.</para>
/// <para>Prepared activation: P = ⌈cols/32⌉·32 int8 codes, float d, int32 outlier count n, cols int32 outlier column
/// indices (first n used), cols float32 outlier values.</para>
/// </summary>
public sealed unsafe class LlmInt8Format : RtnFormat
{
    /// <summary>The shared instance (threshold 6.0, bitsandbytes' default).</summary>
    public static LlmInt8Format Instance { get; } = new();

    private LlmInt8Format() { }

    /// <summary>Activation magnitude above which a column is an outlier.</summary>
    public float Threshold => 6.0f;

    /// <inheritdoc />
    public override string Name => "llm-int8";

    private static int Padded(int cols) => (cols + 31) & ~31;

    /// <inheritdoc />
    public override long RowBytes(int cols) => 4 + Padded(cols);

    /// <inheritdoc />
    public override int ActivationBytes(int cols) => Padded(cols) + 8 + 8 * cols;

    /// <summary>Creates the view with a fresh <see cref="LlmInt8Outliers"/> counter as its state.</summary>
    public override WeightMatrix CreateMatrix(string name, int rows, int cols, byte* data) => new(name, this, rows, cols, data, state: new LlmInt8Outliers());

    /// <inheritdoc />
    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> destination)
    {
        CheckRow(x.Length, destination.Length);
        var dst = destination[..(int)RowBytes(x.Length)];
        dst.Clear();
        float amax = 0;
        foreach (float v in x) amax = MathF.Max(amax, MathF.Abs(v));
        float s = amax / 127f, inv = amax > 0 ? 127f / amax : 0f;
        Unsafe.WriteUnaligned(ref dst[0], s);
        for (int j = 0; j < x.Length; j++) dst[4 + j] = (byte)(sbyte)Math.Clamp((int)MathF.Round(x[j] * inv, MidpointRounding.ToEven), -127, 127);
    }

    /// <inheritdoc />
    public override void PrepareActivation(ReadOnlySpan<float> x, Span<byte> destination)
    {
        int cols = x.Length, p = Padded(cols);
        if (destination.Length < ActivationBytes(cols)) throw new ArgumentException($"{Name}: activation buffer holds {destination.Length} bytes, needs {ActivationBytes(cols)}");
        var codes = MemoryMarshal.Cast<byte, sbyte>(destination[..p]);
        var idx = MemoryMarshal.Cast<byte, int>(destination.Slice(p + 8, 4 * cols));
        var vals = MemoryMarshal.Cast<byte, float>(destination.Slice(p + 8 + 4 * cols, 4 * cols));
        float amax = 0;
        int n = 0;
        for (int c = 0; c < cols; c++)
        {
            float a = MathF.Abs(x[c]);
            if (a > Threshold) { idx[n] = c; vals[n] = x[c]; n++; }
            else amax = MathF.Max(amax, a);
        }
        float id = amax > 0 ? 127f / amax : 0f;
        for (int c = 0; c < cols; c++)
            codes[c] = MathF.Abs(x[c]) > Threshold ? (sbyte)0 : (sbyte)(int)MathF.Round(x[c] * id, MidpointRounding.ToEven);
        codes[cols..].Clear();
        Unsafe.WriteUnaligned(ref destination[p], amax / 127f);
        Unsafe.WriteUnaligned(ref destination[p + 4], n);
    }

    /// <inheritdoc />
    public override void DequantizeRow(WeightMatrix w, int row, Span<float> destination)
    {
        CheckDequantize(w, row, destination.Length);
        byte* p = w.Data + row * w.RowBytes;
        float s = Unsafe.ReadUnaligned<float>(p);
        for (int j = 0; j < w.Cols; j++) destination[j] = s * ((sbyte*)p)[4 + j];
    }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal override void DotRows(WeightMatrix w, int rowStart, int rowEnd, ReadOnlySpan<byte> activations,
        int activationStride, int batch, Span<float> y, int yStride, SimdPath path)
    {
        RtnKernels.Check(path);
        if (!CheckDot(w, rowStart, rowEnd, activations.Length, activationStride, batch, y.Length, yStride)) return;
        int cols = w.Cols, pcols = Padded(cols);
        fixed (byte* act = activations)
        fixed (float* py = y)
        {
            if (rowStart == 0 && w.State is LlmInt8Outliers stats)
                for (int b = 0; b < batch; b++) stats.Add(*(int*)(act + (long)b * activationStride + pcols + 4));
            for (int r = rowStart; r < rowEnd; r++)
            {
                byte* p = w.Data + r * w.RowBytes;
                float s = Unsafe.ReadUnaligned<float>(p);
                sbyte* q = (sbyte*)(p + 4);
                for (int b = 0; b < batch; b++)
                {
                    byte* a = act + (long)b * activationStride;
                    int sumi = RtnKernels.DotS8Row(q, (sbyte*)a, pcols, path);
                    float d = Unsafe.ReadUnaligned<float>(a + pcols);
                    int n = Unsafe.ReadUnaligned<int>(a + pcols + 4);
                    int* idx = (int*)(a + pcols + 8);
                    float* vals = (float*)(a + pcols + 8 + 4 * cols);
                    float outl = 0;
                    for (int k = 0; k < n; k++) outl += q[idx[k]] * vals[k];
                    py[(long)b * yStride + r] = s * (d * sumi + outl);
                }
            }
        }
    }
}
