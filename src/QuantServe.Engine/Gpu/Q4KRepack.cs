namespace QuantServe.Engine.Gpu;

/// <summary>
/// The GPU layout of Q4_K rows. ggml stores a 256-element super-block as fp16 d, fp16 dmin, 12 packed scale/min bytes and
/// 128 code bytes in four 32-byte chunks (chunk c, byte j: element 64c + j in the low nibble, 64c + 32 + j in the high one).
/// On upload the 16-byte header moves to a separate array and the codes are regrouped into eight 16-byte pieces, one per
/// 32-element sub-block k: byte i holds element 32k + i in the low nibble and 32k + 16 + i in the high one — the layout of
/// Q4_0 and int4 — so each GPU lane's 16-byte load meets exactly one 32-element activation block. The byte count is unchanged.
/// </summary>
public static class Q4KRepack
{
    /// <summary>Bytes of one ggml Q4_K super-block.</summary>
    public const int BlockBytes = 144;

    /// <summary>
    /// Splits one row of <paramref name="row"/>.Length / 144 super-blocks into <paramref name="codes"/> (128 bytes per super-block,
    /// sub-block pieces in order) and <paramref name="headers"/> (the 16-byte headers in order).
    /// </summary>
    public static void Row(ReadOnlySpan<byte> row, Span<byte> codes, Span<byte> headers)
    {
        int nsb = row.Length / BlockBytes;
        if (row.Length % BlockBytes != 0 || codes.Length < nsb * 128 || headers.Length < nsb * 16)
            throw new ArgumentException($"a Q4_K row of {row.Length} bytes does not fit codes {codes.Length} / headers {headers.Length}");
        for (int sb = 0; sb < nsb; sb++)
        {
            var blk = row.Slice(sb * BlockBytes, BlockBytes);
            blk[..16].CopyTo(headers.Slice(sb * 16, 16));
            var q = blk[16..];
            var dst = codes.Slice(sb * 128, 128);
            for (int k = 0; k < 8; k++)
            {
                int c = k >> 1, shift = (k & 1) * 4;
                for (int i = 0; i < 16; i++)
                {
                    int lo = (q[32 * c + i] >> shift) & 15, hi = (q[32 * c + 16 + i] >> shift) & 15;
                    dst[16 * k + i] = (byte)(lo | hi << 4);
                }
            }
        }
    }

    /// <summary>
    /// Sub-block <paramref name="k"/>'s scale d · sc_k and offset dmin · m_k from a 16-byte Q4_K/Q5_K super-block header, the
    /// scale bytes taken as gemv.cu's q4k_scale takes them (three little-endian words, shifts by 8 · (k mod 4)).
    /// </summary>
    internal static void HeaderScale(ReadOnlySpan<byte> header, int k, out float scale, out float offset)
    {
        uint x = BitConverter.ToUInt32(header), y = BitConverter.ToUInt32(header[4..]), z = BitConverter.ToUInt32(header[8..]), w = BitConverter.ToUInt32(header[12..]);
        int sh = 8 * (k & 3);
        uint lo = (y >> sh) & 255, mid = (z >> sh) & 255, hi = (w >> sh) & 255;
        uint sc = k < 4 ? lo & 63 : (hi & 15) | ((lo >> 6) << 4);
        uint mn = k < 4 ? mid & 63 : (hi >> 4) | ((mid >> 6) << 4);
        scale = (float)BitConverter.UInt16BitsToHalf((ushort)(x & 0xffff)) * sc;
        offset = (float)BitConverter.UInt16BitsToHalf((ushort)(x >> 16)) * mn;
    }

    /// <summary>
    /// The GPU kernels' reading of the repacked layout, on the CPU: element 32u + j (j &lt; 16: low nibble of piece u's byte j;
    /// else high nibble of byte j − 16) = d · sc_k · code − dmin · m_k with k = u mod 8 and the header of super-block u / 8,
    /// the scale bytes taken as gemv.cu's q4k_scale takes them (three little-endian words, shifts by 8 · (k mod 4)).
    /// </summary>
    public static void Dequantize(ReadOnlySpan<byte> codes, ReadOnlySpan<byte> headers, Span<float> destination)
    {
        int pieces = destination.Length / 32;
        for (int u = 0; u < pieces; u++)
        {
            HeaderScale(headers.Slice((u >> 3) * 16, 16), u & 7, out float scale, out float offset);
            for (int j = 0; j < 16; j++)
            {
                byte b = codes[16 * u + j];
                destination[32 * u + j] = scale * (b & 15) - offset;
                destination[32 * u + 16 + j] = scale * (b >> 4) - offset;
            }
        }
    }
}
