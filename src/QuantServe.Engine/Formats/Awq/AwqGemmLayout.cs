using QuantServe.Engine.Quantization.Formats;
using QuantServe.Engine.Quantization.Methods;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Formats.Awq;

/// <summary>
/// AutoAWQ's GEMM checkpoint layout of one 4-bit linear layer with out × in weights and groups of G input columns:
/// <list type="bullet">
/// <item><c>qweight</c> int32 [in, out / 8]: word (i, j) holds the codes of input i for outputs 8j … 8j + 7, the code of
/// output 8j + <c>Order[k]</c> in bits 4k … 4k + 3 (Order = 0, 2, 4, 6, 1, 3, 5, 7);</item>
/// <item><c>qzeros</c> int32 [in / G, out / 8]: the zero points, packed the same way;</item>
/// <item><c>scales</c> fp16 [in / G, out].</item>
/// </list>
/// Weight (o, i) dequantizes to <c>scales[i / G, o] · (q − z)</c>.
/// </summary>
public static class AwqGemmLayout
{
    /// <summary>The output within a group of eight whose code sits in nibble k of a packed word.</summary>
    public static ReadOnlySpan<int> Order => [0, 2, 4, 6, 1, 3, 5, 7];

    /// <summary>The nibble holding output <c>8j + o</c> (the inverse of <see cref="Order"/>).</summary>
    public static ReadOnlySpan<int> Nibble => [0, 4, 1, 5, 2, 6, 3, 7];

    /// <summary>Packs the codes of <paramref name="m"/> into <c>qweight</c> (see the class summary).</summary>
    public static int[] PackWeights(AwqMatrix m)
    {
        Check(m);
        int packed = m.Rows / 8;
        var q = new int[m.Cols * packed];
        for (int i = 0; i < m.Cols; i++)
            for (int j = 0; j < packed; j++)
            {
                int word = 0;
                for (int k = 0; k < 8; k++) word |= m.Q[(8 * j + Order[k]) * m.Cols + i] << (4 * k);
                q[i * packed + j] = word;
            }
        return q;
    }

    /// <summary>Packs the zero points of <paramref name="m"/> into <c>qzeros</c>.</summary>
    public static int[] PackZeros(AwqMatrix m)
    {
        Check(m);
        int packed = m.Rows / 8;
        var z = new int[m.Groups * packed];
        for (int g = 0; g < m.Groups; g++)
            for (int j = 0; j < packed; j++)
            {
                int word = 0;
                for (int k = 0; k < 8; k++) word |= m.Zeros[(8 * j + Order[k]) * m.Groups + g] << (4 * k);
                z[g * packed + j] = word;
            }
        return z;
    }

    /// <summary>The scales of <paramref name="m"/> as <c>scales</c> [groups, out] in fp16.</summary>
    public static Half[] PackScales(AwqMatrix m)
    {
        Check(m);
        var s = new Half[m.Groups * m.Rows];
        for (int g = 0; g < m.Groups; g++)
            for (int o = 0; o < m.Rows; o++) s[g * m.Rows + o] = (Half)m.Scales[o * m.Groups + g];
        return s;
    }

    /// <summary>
    /// Repacks one layer's tensors into a <see cref="IntGroupFormat"/> <c>int4-gG-asym</c> matrix (float scale, zero byte,
    /// 4-bit codes per row), which holds exactly the same dequantized weights. Rows are repacked in parallel; no
    /// full-precision copy is made.
    /// </summary>
    public static unsafe WeightMatrix ToWeightMatrix(string name, ReadOnlySpan<int> qweight, ReadOnlySpan<int> qzeros, ReadOnlySpan<Half> scales,
        int rows, int cols, int group)
    {
        if (rows % 8 != 0 || group <= 0 || cols % group != 0)
            throw new ArgumentException($"{name}: {rows}x{cols} with groups of {group} does not fit the AWQ GEMM layout");
        int packed = rows / 8, groups = cols / group;
        if (qweight.Length != cols * packed || qzeros.Length != groups * packed || scales.Length != groups * rows)
            throw new ArgumentException($"{name}: tensor sizes do not match {rows}x{cols} g{group}");
        var format = (IntGroupFormat)(TensorFormats.ForName($"int4-g{group}-asym") ?? throw new InvalidOperationException($"int4-g{group}-asym is not registered"));
        long rowBytes = format.RowBytes(cols);
        var data = GC.AllocateArray<byte>(checked((int)(rows * rowBytes)), pinned: true);
        var qw = qweight.ToArray();
        var qz = qzeros.ToArray();
        var sc = scales.ToArray();
        Parallel.For(0, rows, () => (Codes: new byte[cols], S: new float[groups], Z: new byte[groups]), (o, _, b) =>
        {
            int j = o / 8, shift = 4 * Nibble[o % 8];
            for (int i = 0; i < cols; i++) b.Codes[i] = (byte)((qw[i * packed + j] >> shift) & 15);
            for (int g = 0; g < groups; g++)
            {
                b.S[g] = (float)sc[g * rows + o];
                b.Z[g] = (byte)((qz[g * packed + j] >> shift) & 15);
            }
            format.EncodeRow(b.Codes, b.S, b.Z, data.AsSpan((int)(o * rowBytes), (int)rowBytes));
            return b;
        }, _ => { });
        byte* p = (byte*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref data[0]);
        return new WeightMatrix(name, format, rows, cols, p, rowBytes, data);
    }

    private static void Check(AwqMatrix m)
    {
        if (m.Bits != 4) throw new ArgumentException($"the AWQ GEMM layout holds 4-bit codes, not {m.Bits}-bit");
        if (m.Rows % 8 != 0 || m.Cols % m.GroupSize != 0)
            throw new ArgumentException($"the AWQ GEMM layout needs outputs in multiples of 8 and whole groups: {m.Rows}x{m.Cols} g{m.GroupSize}");
    }
}
