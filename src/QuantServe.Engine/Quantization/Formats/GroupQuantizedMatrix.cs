using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>
/// Builds the run-time matrix of an integer group-quantized linear layer from its unpacked values, whatever checkpoint
/// it came from (GPTQ's <c>qweight/qzeros/scales/g_idx</c>, AWQ's GEMM layout): weight (r, c) is
/// <c>scales[r·groups + g] · (codes[r·cols + c] − zeros[r·groups + g])</c> with <c>g = gIdx[c]</c>.
/// The values are repacked once into <see cref="IntGroupFormat"/>'s asymmetric row layout (float scale and zero-point
/// byte per group, packed codes), which its fused AVX-512/AVX2/Vector128/scalar kernels compute from directly; no
/// full-precision copy is made. When <c>gIdx</c> is not the plain <c>c / groupSize</c> (GPTQ act-order), columns are
/// stored sorted by group (stable) and the matrix uses a <see cref="PermutedFormat"/>, which permutes each activation
/// once before the kernel. Every group must then hold <c>groupSize</c> columns (the last may hold fewer), as GPTQ's g_idx
/// always does.
/// </summary>
public static unsafe class GroupQuantizedMatrix
{
    /// <summary>
    /// The run-time matrix. <paramref name="codes"/>: rows × cols values in [0, 2^bits − 1], original column order;
    /// <paramref name="scales"/>, <paramref name="zeros"/>: rows × groups (zeros as the true zero point, in [0, 2^bits − 1]);
    /// <paramref name="gIdx"/>: group of each input column (empty: <c>c / groupSize</c>); <paramref name="groupSize"/>:
    /// columns per group, or −1 / ≥ cols for one group per row. Throws <see cref="ArgumentException"/> on inconsistent input.
    /// </summary>
    public static WeightMatrix Create(string name, int bits, int groupSize, int rows, int cols,
        ReadOnlySpan<byte> codes, ReadOnlySpan<float> scales, ReadOnlySpan<int> zeros, ReadOnlySpan<int> gIdx)
    {
        if (bits is not (2 or 3 or 4 or 8)) throw new ArgumentException($"{name}: {bits}-bit weights are not supported (2, 3, 4 or 8)");
        if (rows <= 0 || cols <= 0) throw new ArgumentException($"{name}: bad shape {rows} × {cols}");
        int g = groupSize <= 0 || groupSize >= cols ? cols : groupSize;
        int groups = (cols + g - 1) / g;
        if (codes.Length != (long)rows * cols) throw new ArgumentException($"{name}: {codes.Length} codes for {rows} × {cols}");
        if (scales.Length != (long)rows * groups || zeros.Length != (long)rows * groups)
            throw new ArgumentException($"{name}: {scales.Length} scales and {zeros.Length} zeros, expected {rows} × {groups} groups of {g}");
        int[]? order = gIdx.IsEmpty ? null : OrderOf(name, gIdx, cols, g, groups);

        var format = new IntGroupFormat(bits, g == cols ? 0 : g, asymmetric: true);
        long rowBytes = format.RowBytes(cols);
        var data = GC.AllocateUninitializedArray<byte>(checked((int)(rows * rowBytes)), pinned: true);
        int maxq = (1 << bits) - 1;
        var codesArr = codes.ToArray();
        var scalesArr = scales.ToArray();
        var zerosArr = zeros.ToArray();
        Parallel.For(0, rows, () => (U: new byte[cols], Z: new byte[groups]), (r, _, s) =>
        {
            for (int i = 0; i < cols; i++) s.U[i] = codesArr[r * cols + (order?[i] ?? i)];
            for (int k = 0; k < groups; k++)
            {
                int z = zerosArr[r * groups + k];
                if ((uint)z > (uint)maxq) throw new ArgumentException($"{name}: zero point {z} of row {r} group {k} is outside 0..{maxq}");
                s.Z[k] = (byte)z;
            }
            format.EncodeRow(s.U, scalesArr.AsSpan(r * groups, groups), s.Z, data.AsSpan((int)(r * rowBytes), (int)rowBytes));
            return s;
        }, _ => { });

        byte* p = (byte*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref data[0]);
        if (order is null) return new WeightMatrix(name, format, rows, cols, p, rowBytes, data);
        return new PermutedFormat(format, order).CreateMatrix(name, rows, p, data);
    }

    /// <summary>The stable sort of columns by group, or null when g_idx is the plain c / g; checks the group sizes.</summary>
    private static int[]? OrderOf(string name, ReadOnlySpan<int> gIdx, int cols, int g, int groups)
    {
        if (gIdx.Length != cols) throw new ArgumentException($"{name}: g_idx has {gIdx.Length} entries for {cols} columns");
        var count = new int[groups];
        bool plain = true;
        for (int c = 0; c < cols; c++)
        {
            int k = gIdx[c];
            if ((uint)k >= (uint)groups) throw new ArgumentException($"{name}: g_idx[{c}] = {k} is outside 0..{groups - 1}");
            count[k]++;
            plain &= k == c / g;
        }
        if (plain) return null;
        for (int k = 0; k < groups; k++)
        {
            int expected = Math.Min(g, cols - k * g);
            if (count[k] != expected)
                throw new ArgumentException($"{name}: g_idx puts {count[k]} columns in group {k}, expected {expected} (groups of {g})");
        }
        var order = new int[cols];
        var next = new int[groups];
        for (int k = 0; k < groups; k++) next[k] = k * g;
        for (int c = 0; c < cols; c++) order[next[gIdx[c]]++] = c;
        return order;
    }
}
