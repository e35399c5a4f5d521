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
    /// Repacks one layer's tensors into the run-time int-group matrix (<see cref="GroupQuantizedMatrix"/>:
    /// <c>int4-gG-asym</c> rows with float scale, zero byte and packed codes on the fused integer kernels), which holds
    /// exactly the same dequantized weights. No full-precision copy is made.
    /// </summary>
    public static WeightMatrix ToWeightMatrix(string name, ReadOnlySpan<int> qweight, ReadOnlySpan<int> qzeros, ReadOnlySpan<Half> scales,
        int rows, int cols, int group)
    {
        if (rows % 8 != 0 || group <= 0 || cols % group != 0)
            throw new ArgumentException($"{name}: {rows}x{cols} with groups of {group} does not fit the AWQ GEMM layout");
        int packed = rows / 8, groups = cols / group;
        if (qweight.Length != cols * packed || qzeros.Length != groups * packed || scales.Length != groups * rows)
            throw new ArgumentException($"{name}: tensor sizes do not match {rows}x{cols} g{group}");
        var codes = new byte[rows * cols];
        var s = new float[rows * groups];
        var z = new int[rows * groups];
        for (int i = 0; i < cols; i++)
            for (int j = 0; j < packed; j++)
            {
                int word = qweight[i * packed + j];
                for (int k = 0; k < 8; k++) codes[(8 * j + Order[k]) * cols + i] = (byte)((word >> (4 * k)) & 15);
            }
        for (int g = 0; g < groups; g++)
            for (int j = 0; j < packed; j++)
            {
                int word = qzeros[g * packed + j];
                for (int k = 0; k < 8; k++) z[(8 * j + Order[k]) * groups + g] = (word >> (4 * k)) & 15;
            }
        for (int g = 0; g < groups; g++)
            for (int o = 0; o < rows; o++) s[o * groups + g] = (float)scales[g * rows + o];
        return GroupQuantizedMatrix.Create(name, 4, group, rows, cols, codes, s, z, []);
    }

    private static void Check(AwqMatrix m)
    {
        if (m.Bits != 4) throw new ArgumentException($"the AWQ GEMM layout holds 4-bit codes, not {m.Bits}-bit");
        if (m.Rows % 8 != 0 || m.Cols % m.GroupSize != 0)
            throw new ArgumentException($"the AWQ GEMM layout needs outputs in multiples of 8 and whole groups: {m.Rows}x{m.Cols} g{m.GroupSize}");
    }
}
