using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using QuantServe.Engine.Kernels.Cpu;

namespace QuantServe.Engine.Tensors.Formats;

/// <summary>
/// Shared shape of the unquantized formats: activations stay F32 (the default verbatim
/// <see cref="TensorFormat.PrepareActivation"/>) and <see cref="TensorFormat.DotRows"/> runs
/// <see cref="FloatDotKernels"/> with the format's element decoder.
/// </summary>
public abstract unsafe class FloatFormat : TensorFormat
{
    private protected FloatFormat() { }

    /// <summary>Bytes per element.</summary>
    protected abstract int ElementBytes { get; }

    /// <inheritdoc />
    public override long RowBytes(int cols) => (long)cols * ElementBytes;

    /// <inheritdoc />
    public override void DotRows(WeightMatrix w, int rowStart, int rowEnd, ReadOnlySpan<byte> activations, int activationStride,
        int batch, Span<float> y, int yStride)
        => DotRows(KernelPaths.Best, w, rowStart, rowEnd, activations, activationStride, batch, y, yStride);

    /// <summary><see cref="DotRows(WeightMatrix,int,int,ReadOnlySpan{byte},int,int,Span{float},int)"/> on a chosen path (tests compare paths).</summary>
    internal void DotRows(SimdPath path, WeightMatrix w, int rowStart, int rowEnd, ReadOnlySpan<byte> activations, int activationStride,
        int batch, Span<float> y, int yStride)
    {
        if (batch <= 0 || rowEnd <= rowStart) return;
        if ((uint)rowStart > (uint)w.Rows || (uint)rowEnd > (uint)w.Rows)
            throw new ArgumentOutOfRangeException(nameof(rowEnd), $"{w.Name}: rows [{rowStart}, {rowEnd}) outside [0, {w.Rows})");
        if ((long)(batch - 1) * activationStride + (long)w.Cols * sizeof(float) > activations.Length)
            throw new ArgumentException($"{w.Name}: activation buffer too small for batch {batch}", nameof(activations));
        if ((long)(batch - 1) * yStride + rowEnd > y.Length)
            throw new ArgumentException($"{w.Name}: output buffer too small for batch {batch}", nameof(y));
        fixed (byte* a = activations)
        fixed (float* py = y)
            Kernel(path, w, rowStart, rowEnd, a, activationStride, batch, py, yStride);
    }

    private protected abstract void Kernel(SimdPath path, WeightMatrix w, int rowStart, int rowEnd, byte* act, int actStride, int batch, float* y, int yStride);
}

/// <summary>IEEE binary32 weights (ggml F32).</summary>
public sealed unsafe class F32Format : FloatFormat
{
    /// <summary>The single instance.</summary>
    public static readonly F32Format Instance = new();
    private F32Format() { }
    private protected override void Kernel(SimdPath path, WeightMatrix w, int rowStart, int rowEnd, byte* act, int actStride, int batch, float* y, int yStride)
        => FloatDotKernels.DotRows<F32Decoder>(path, w, rowStart, rowEnd, act, actStride, batch, y, yStride);
    /// <inheritdoc />
    public override string Name => "F32";
    /// <inheritdoc />
    public override GgmlType? Ggml => GgmlType.F32;
    /// <inheritdoc />
    protected override int ElementBytes => 4;
    /// <inheritdoc />
    public override void DequantizeRow(WeightMatrix w, int row, Span<float> destination)
        => new ReadOnlySpan<float>(w.Data + row * w.RowBytes, w.Cols).CopyTo(destination);
}

/// <summary>
/// IEEE binary16 weights (ggml F16); dequantized exactly. Each matrix is scanned once, on first use, for Inf/NaN
/// patterns: matrices without any (every real checkpoint) use the three-operation <see cref="F16FiniteDecoder"/>, the
/// others the exact general decoder.
/// </summary>
public sealed unsafe class F16Format : FloatFormat
{
    /// <summary>The single instance.</summary>
    public static readonly F16Format Instance = new();
    private static readonly ConditionalWeakTable<WeightMatrix, StrongBox<bool>> Finite = new();
    private F16Format() { }
    private protected override void Kernel(SimdPath path, WeightMatrix w, int rowStart, int rowEnd, byte* act, int actStride, int batch, float* y, int yStride)
    {
        if (IsFinite(w)) FloatDotKernels.DotRows<F16FiniteDecoder>(path, w, rowStart, rowEnd, act, actStride, batch, y, yStride);
        else FloatDotKernels.DotRows<F16Decoder>(path, w, rowStart, rowEnd, act, actStride, batch, y, yStride);
    }

    /// <summary>Whether no element of <paramref name="w"/> is Inf or NaN (exponent bits all ones); computed once per matrix.</summary>
    internal static bool IsFinite(WeightMatrix w) => Finite.GetValue(w, static m => new StrongBox<bool>(Scan(m))).Value;

    private static bool Scan(WeightMatrix w)
    {
        const ushort exponent = 0x7C00;
        for (int r = 0; r < w.Rows; r++)
        {
            var row = new ReadOnlySpan<ushort>(w.Data + r * w.RowBytes, w.Cols);
            int c = 0;
            if (Vector512.IsHardwareAccelerated)
                for (; c + 32 <= row.Length; c += 32)
                {
                    var v = Vector512.Create(row.Slice(c, 32)) & Vector512.Create(exponent);
                    if (Vector512.EqualsAny(v, Vector512.Create(exponent))) return false;
                }
            for (; c < row.Length; c++)
                if ((row[c] & exponent) == exponent) return false;
        }
        return true;
    }
    /// <inheritdoc />
    public override string Name => "F16";
    /// <inheritdoc />
    public override GgmlType? Ggml => GgmlType.F16;
    /// <inheritdoc />
    protected override int ElementBytes => 2;
    /// <inheritdoc />
    public override void DequantizeRow(WeightMatrix w, int row, Span<float> destination)
        => System.Numerics.Tensors.TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>(w.Data + row * w.RowBytes, w.Cols), destination[..w.Cols]);
}

/// <summary>bfloat16 weights (ggml BF16); dequantized exactly (bits shifted into the top half of a binary32).</summary>
public sealed unsafe class BF16Format : FloatFormat
{
    /// <summary>The single instance.</summary>
    public static readonly BF16Format Instance = new();
    private BF16Format() { }
    private protected override void Kernel(SimdPath path, WeightMatrix w, int rowStart, int rowEnd, byte* act, int actStride, int batch, float* y, int yStride)
        => FloatDotKernels.DotRows<BF16Decoder>(path, w, rowStart, rowEnd, act, actStride, batch, y, yStride);
    /// <inheritdoc />
    public override string Name => "BF16";
    /// <inheritdoc />
    public override GgmlType? Ggml => GgmlType.BF16;
    /// <inheritdoc />
    protected override int ElementBytes => 2;
    /// <inheritdoc />
    public override void DequantizeRow(WeightMatrix w, int row, Span<float> destination)
    {
        ushort* src = (ushort*)(w.Data + row * w.RowBytes);
        var dst = destination[..w.Cols];
        for (int i = 0; i < dst.Length; i++) dst[i] = BitConverter.Int32BitsToSingle(src[i] << 16);
    }
}
