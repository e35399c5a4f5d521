namespace QuantServe.Engine.Formats.Gptq;

/// <summary>
/// The int32 packing of the Hugging Face GPTQ checkpoint layout (AutoGPTQ, GPTQModel, transformers), for 2, 3, 4 and 8
/// bits. Values of a packed dimension form one little-endian bit stream per column: value i occupies bits
/// <c>[bits·i, bits·i + bits)</c> of the stream, bit b of the stream being bit <c>b mod 32</c> of word <c>b / 32</c>.
/// For 2, 4 and 8 bits that is <c>32/bits</c> whole values per word (value i in word <c>i·bits/32</c> at shift
/// <c>(i mod 32/bits)·bits</c>); for 3 bits 32 values fill three words and values 10 and 21 of each 32 straddle a word
/// boundary, exactly as AutoGPTQ's <c>pack</c> writes them.
/// <list type="bullet">
/// <item><c>qweight</c> int32 [in·bits/32, out]: packed along the input dimension (rows of the tensor), one stream per output column.</item>
/// <item><c>qzeros</c> int32 [groups, out·bits/32]: packed along the output dimension, one stream per group. GPTQ
/// (v1, <c>checkpoint_format: "gptq"</c>) stores <c>zero − 1</c> (masked to the bit width; read back as
/// <c>(stored + 1) mod 2^bits</c>), <c>gptq_v2</c> stores the zero itself.</item>
/// <item><c>scales</c> float16 [groups, out]; <c>g_idx</c> int32 [in], the group of each input column.</item>
/// </list>
/// </summary>
public static class GptqPacking
{
    /// <summary>Packs <paramref name="values"/> (each below 2^bits) into consecutive words of a bit stream starting at <paramref name="words"/>[0], stepping <paramref name="wordStride"/> ints per word.</summary>
    public static void PackStream(ReadOnlySpan<int> values, int bits, Span<int> words, int wordStride = 1)
    {
        CheckBits(bits);
        int mask = (1 << bits) - 1;
        for (int i = 0; i < values.Length; i++)
        {
            uint v = (uint)(values[i] & mask);
            long bit = (long)i * bits;
            int word = (int)(bit >> 5), shift = (int)(bit & 31);
            words[word * wordStride] |= (int)(v << shift);
            if (shift + bits > 32) words[(word + 1) * wordStride] |= (int)(v >> (32 - shift));
        }
    }

    /// <summary>Reads <paramref name="values"/>.Length values of a bit stream (see <see cref="PackStream"/>).</summary>
    public static void UnpackStream(ReadOnlySpan<int> words, int bits, Span<int> values, int wordStride = 1)
    {
        CheckBits(bits);
        uint mask = (1u << bits) - 1;
        for (int i = 0; i < values.Length; i++)
        {
            long bit = (long)i * bits;
            int word = (int)(bit >> 5), shift = (int)(bit & 31);
            ulong v = (uint)words[word * wordStride] >> shift;
            if (shift + bits > 32) v |= (ulong)(uint)words[(word + 1) * wordStride] << (32 - shift);
            values[i] = (int)(v & mask);
        }
    }

    /// <summary>Int32 words a stream of <paramref name="count"/> values takes; the count times bits must be a multiple of 32.</summary>
    public static int Words(int count, int bits)
    {
        CheckBits(bits);
        if ((long)count * bits % 32 != 0) throw new ArgumentException($"{count} values of {bits} bits do not fill whole int32 words");
        return (int)((long)count * bits / 32);
    }

    /// <summary>qweight [in·bits/32, out] from codes [out, in] (row-major, the weight's own orientation).</summary>
    public static int[] PackWeight(ReadOnlySpan<byte> codes, int outFeatures, int inFeatures, int bits)
    {
        int words = Words(inFeatures, bits);
        var q = new int[words * outFeatures];
        var column = new int[inFeatures];
        for (int o = 0; o < outFeatures; o++)
        {
            for (int i = 0; i < inFeatures; i++) column[i] = codes[o * inFeatures + i];
            PackStream(column, bits, q.AsSpan(o), outFeatures);
        }
        return q;
    }

    /// <summary>Codes [out, in] from qweight [in·bits/32, out].</summary>
    public static byte[] UnpackWeight(ReadOnlySpan<int> qweight, int outFeatures, int inFeatures, int bits)
    {
        if (qweight.Length != (long)Words(inFeatures, bits) * outFeatures) throw new ArgumentException($"qweight holds {qweight.Length} words, expected {Words(inFeatures, bits)} × {outFeatures}");
        var codes = new byte[outFeatures * inFeatures];
        var column = new int[inFeatures];
        for (int o = 0; o < outFeatures; o++)
        {
            UnpackStream(qweight[o..], bits, column, outFeatures);
            for (int i = 0; i < inFeatures; i++) codes[o * inFeatures + i] = (byte)column[i];
        }
        return codes;
    }

    /// <summary>qzeros [groups, out·bits/32] from true zero points [out, groups]; v1 stores zero − 1.</summary>
    public static int[] PackZeros(ReadOnlySpan<int> zeros, int outFeatures, int groups, int bits, bool v1)
    {
        int words = Words(outFeatures, bits);
        var q = new int[groups * words];
        var row = new int[outFeatures];
        for (int k = 0; k < groups; k++)
        {
            for (int o = 0; o < outFeatures; o++) row[o] = zeros[o * groups + k] - (v1 ? 1 : 0);
            PackStream(row, bits, q.AsSpan(k * words, words));
        }
        return q;
    }

    /// <summary>True zero points [out, groups] from qzeros [groups, out·bits/32]; v1 reads (stored + 1) mod 2^bits.</summary>
    public static int[] UnpackZeros(ReadOnlySpan<int> qzeros, int outFeatures, int groups, int bits, bool v1)
    {
        int words = Words(outFeatures, bits);
        if (qzeros.Length != (long)groups * words) throw new ArgumentException($"qzeros holds {qzeros.Length} words, expected {groups} × {words}");
        var zeros = new int[outFeatures * groups];
        var row = new int[outFeatures];
        int mask = (1 << bits) - 1;
        for (int k = 0; k < groups; k++)
        {
            UnpackStream(qzeros.Slice(k * words, words), bits, row);
            for (int o = 0; o < outFeatures; o++) zeros[o * groups + k] = (row[o] + (v1 ? 1 : 0)) & mask;
        }
        return zeros;
    }

    private static void CheckBits(int bits)
    {
        if (bits is not (2 or 3 or 4 or 8)) throw new ArgumentException($"{bits}-bit packing is not supported (2, 3, 4 or 8)");
    }
}
