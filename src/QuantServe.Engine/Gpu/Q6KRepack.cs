namespace QuantServe.Engine.Gpu;

/// <summary>
/// The GPU layout of Q6_K rows, read by the integer-dot kernels in pieces of 32 elements. ggml stores a 256-element
/// super-block as 128 low-nibble bytes ql, 64 bytes qh of 2-bit high parts, 16 int8 sub-block scales and fp16 d: element
/// e = 128n + 32j + l (l &lt; 32) has nibble (ql[64n + 32(j mod 2) + l] ≫ 4⌊j/2⌋) mod 16, high part (qh[32n + l] ≫ 2j) mod 4,
/// value d · sc[e / 16] · (q − 32). On upload a row becomes:
/// <list type="bullet">
/// <item>codes: nsb · 8 pieces of 16 bytes (piece u: byte i holds element 32u + i in the low nibble, 32u + 16 + i in the
/// high one, as Q4_K's pieces), then nsb · 8 high-part words of 8 bytes: for piece u, word t = 0..3 of its codes, byte m of
/// 32-bit half ⌊t/2⌋ holds at bits 4(t mod 2) .. +1 the high part of element 32u + 4t + m and at bits 4(t mod 2) + 2 .. +3
/// that of element 32u + 16 + 4t + m — so a word's four 6-bit codes are (w &amp; 0x0F0F0F0F) | ((h ≫ s) &amp; 0x03030303) ≪ 4;</item>
/// <item>scales: the nsb · 16 int8 scales in order (piece u uses bytes 2u, 2u + 1), then the nsb fp16 d.</item>
/// </list>
/// 192 code and 18 scale bytes per super-block: the byte count is unchanged.
/// </summary>
public static class Q6KRepack
{
    /// <summary>Bytes of one ggml Q6_K super-block.</summary>
    public const int BlockBytes = 210;
    /// <summary>Code bytes (pieces and high parts) per super-block in the GPU layout.</summary>
    public const int CodeBytes = 192;
    /// <summary>Scale bytes (16 int8 scales and fp16 d) per super-block in the GPU layout.</summary>
    public const int ScaleBytes = 18;

    /// <summary>The 6-bit code (0..63) of element <paramref name="e"/> of a native super-block.</summary>
    private static int Code(ReadOnlySpan<byte> blk, int e)
    {
        int n = e >> 7, j = (e >> 5) & 3, l = e & 31;
        int nib = (blk[64 * n + 32 * (j & 1) + l] >> (4 * (j >> 1))) & 15;
        return nib | ((blk[128 + 32 * n + l] >> (2 * j)) & 3) << 4;
    }

    /// <summary>Re-lays one row of <paramref name="row"/>.Length / 210 super-blocks into <paramref name="codes"/> (nsb · 192 bytes) and <paramref name="scales"/> (nsb · 18).</summary>
    public static void Row(ReadOnlySpan<byte> row, Span<byte> codes, Span<byte> scales)
    {
        int nsb = row.Length / BlockBytes;
        if (row.Length % BlockBytes != 0 || codes.Length < nsb * CodeBytes || scales.Length < nsb * ScaleBytes)
            throw new ArgumentException($"a Q6_K row of {row.Length} bytes does not fit codes {codes.Length} / scales {scales.Length}");
        var pieces = codes[..(nsb * 128)];
        var high = codes.Slice(nsb * 128, nsb * 64);
        high.Clear();
        for (int sb = 0; sb < nsb; sb++)
        {
            var blk = row.Slice(sb * BlockBytes, BlockBytes);
            for (int k = 0; k < 8; k++)
            {
                int u = 8 * sb + k;
                for (int i = 0; i < 16; i++)
                {
                    int lo = Code(blk, 32 * k + i), hi = Code(blk, 32 * k + 16 + i);
                    pieces[16 * u + i] = (byte)((lo & 15) | (hi & 15) << 4);
                    int t = i >> 2, m = i & 3, at = 8 * u + 4 * (t >> 1) + m, sh = 4 * (t & 1);
                    high[at] |= (byte)((lo >> 4) << sh | (hi >> 4) << (sh + 2));
                }
            }
            blk.Slice(192, 16).CopyTo(scales.Slice(sb * 16, 16));
            blk.Slice(208, 2).CopyTo(scales.Slice(nsb * 16 + sb * 2, 2));
        }
    }

    /// <summary>
    /// The GPU kernels' reading of the layout, on the CPU: element 32u + 16h + i (i &lt; 16) = d_{u/8} · sc[2u + h] ·
    /// (nibble | high part ≪ 4 − 32), nibble and high part found as described on <see cref="Q6KRepack"/>.
    /// </summary>
    public static void Dequantize(ReadOnlySpan<byte> codes, ReadOnlySpan<byte> scales, Span<float> destination)
    {
        int units = destination.Length / 32, nsb = units / 8;
        for (int u = 0; u < units; u++)
        {
            float d = (float)BitConverter.UInt16BitsToHalf(BitConverter.ToUInt16(scales[(nsb * 16 + (u >> 3) * 2)..]));
            for (int h = 0; h < 2; h++)
            {
                float s = d * (sbyte)scales[2 * u + h];
                for (int i = 0; i < 16; i++)
                {
                    int t = i >> 2, m = i & 3;
                    int nib = (codes[16 * u + i] >> (4 * h)) & 15;
                    int hp = (codes[nsb * 128 + 8 * u + 4 * (t >> 1) + m] >> (4 * (t & 1) + 2 * h)) & 3;
                    destination[32 * u + 16 * h + i] = s * ((nib | hp << 4) - 32);
                }
            }
        }
    }
}
