namespace QuantServe.Engine.Gpu;

/// <summary>
/// The GPU layout of Q5_K rows, read by the integer-dot kernels in pieces of 32 elements. ggml stores a 256-element
/// super-block as fp16 d, fp16 dmin, 12 packed 6-bit scale/min bytes, 32 bytes qh and 128 bytes ql: element e = 64c + 32h + l
/// has low bits (ql[32c + l] ≫ 4h) mod 16 and fifth bit (qh[l] ≫ ⌊e/32⌋) mod 2, value d · sc_k · q − dmin · m_k for
/// sub-block k = ⌊e/32⌋. On upload a row becomes:
/// <list type="bullet">
/// <item>codes: nsb · 8 pieces of 16 bytes (piece u: byte i holds the low bits of element 32u + i in the low nibble and of
/// 32u + 16 + i in the high one, as <see cref="Q4KRepack"/>), then nsb · 8 fifth-bit words of 4 bytes: for piece u, byte m
/// holds at bit t (t = 0..3) the fifth bit of element 32u + 4t + m and at bit 4 + t that of 32u + 16 + 4t + m — so word t of
/// the piece's codes gives its four low-half codes as (w &amp; 0x0F0F0F0F) | ((f ≪ (4 − t)) &amp; 0x10101010);</item>
/// <item>headers: the 16-byte super-block headers (d, dmin, scale bytes), as Q4_K's.</item>
/// </list>
/// 160 code and 16 header bytes per super-block: the byte count is unchanged.
/// </summary>
public static class Q5KRepack
{
    /// <summary>Bytes of one ggml Q5_K super-block.</summary>
    public const int BlockBytes = 176;
    /// <summary>Code bytes (pieces and fifth bits) per super-block in the GPU layout.</summary>
    public const int CodeBytes = 160;

    private static int Code(ReadOnlySpan<byte> blk, int e)
    {
        int c = e >> 6, h = (e >> 5) & 1, l = e & 31;
        return ((blk[48 + 32 * c + l] >> (4 * h)) & 15) | ((blk[16 + l] >> (e >> 5)) & 1) << 4;
    }

    /// <summary>Re-lays one row of <paramref name="row"/>.Length / 176 super-blocks into <paramref name="codes"/> (nsb · 160 bytes) and <paramref name="headers"/> (nsb · 16).</summary>
    public static void Row(ReadOnlySpan<byte> row, Span<byte> codes, Span<byte> headers)
    {
        int nsb = row.Length / BlockBytes;
        if (row.Length % BlockBytes != 0 || codes.Length < nsb * CodeBytes || headers.Length < nsb * 16)
            throw new ArgumentException($"a Q5_K row of {row.Length} bytes does not fit codes {codes.Length} / headers {headers.Length}");
        var pieces = codes[..(nsb * 128)];
        var fifth = codes.Slice(nsb * 128, nsb * 32);
        fifth.Clear();
        for (int sb = 0; sb < nsb; sb++)
        {
            var blk = row.Slice(sb * BlockBytes, BlockBytes);
            blk[..16].CopyTo(headers.Slice(sb * 16, 16));
            for (int k = 0; k < 8; k++)
            {
                int u = 8 * sb + k;
                for (int i = 0; i < 16; i++)
                {
                    int lo = Code(blk, 32 * k + i), hi = Code(blk, 32 * k + 16 + i);
                    pieces[16 * u + i] = (byte)((lo & 15) | (hi & 15) << 4);
                    int t = i >> 2, m = i & 3;
                    fifth[4 * u + m] |= (byte)((lo >> 4) << t | (hi >> 4) << (4 + t));
                }
            }
        }
    }

    /// <summary>
    /// The GPU kernels' reading of the layout, on the CPU: element 32u + 16h + i (i &lt; 16) = d · sc_k · q − dmin · m_k with
    /// k = u mod 8 and the header of super-block u / 8 (scale bytes taken as gemv.cu's q4k_scale takes them), q = the nibble
    /// | fifth bit ≪ 4 found as described on <see cref="Q5KRepack"/>.
    /// </summary>
    public static void Dequantize(ReadOnlySpan<byte> codes, ReadOnlySpan<byte> headers, Span<float> destination)
    {
        int units = destination.Length / 32, nsb = units / 8;
        for (int u = 0; u < units; u++)
        {
            Q4KRepack.HeaderScale(headers.Slice((u >> 3) * 16, 16), u & 7, out float scale, out float offset);
            for (int h = 0; h < 2; h++)
                for (int i = 0; i < 16; i++)
                {
                    int t = i >> 2, m = i & 3;
                    int nib = (codes[16 * u + i] >> (4 * h)) & 15;
                    int bit = (codes[nsb * 128 + 4 * u + m] >> (4 * h + t)) & 1;
                    destination[32 * u + 16 * h + i] = scale * (nib | bit << 4) - offset;
                }
        }
    }
}
