using System.Runtime.InteropServices;
using QuantServe.Engine.Gpu;
using QuantServe.Engine.Tensors;
using QuantServe.Engine.Tensors.Formats;

namespace QuantServe.Engine.Tests.Gpu;

/// <summary>The GPU's repacked Q5_K and Q6_K layouts, emulated on the CPU, reproduce the CPU's dequantization bit for bit.</summary>
public unsafe class KQuantRepackTests
{
    [Theory]
    [InlineData("Q6_K", 256)]
    [InlineData("Q6_K", 2048)]
    [InlineData("Q6_K", 14336)]
    [InlineData("Q5_K", 256)]
    [InlineData("Q5_K", 2048)]
    [InlineData("Q5_K", 14336)]
    public void Dequantize_RepackedRows_EqualDequantizeRow(string name, int cols)
    {
        var (w, mem) = GpuBench.RandomMatrix(TensorFormats.ForName(name)!, 6, cols, 5);
        try
        {
            bool q6 = name == "Q6_K";
            int nsb = cols / 256;
            var codes = new byte[nsb * (q6 ? Q6KRepack.CodeBytes : Q5KRepack.CodeBytes)];
            var scales = new byte[nsb * (q6 ? Q6KRepack.ScaleBytes : 16)];
            var expected = new float[cols];
            var actual = new float[cols];
            for (int r = 0; r < w.Rows; r++)
            {
                if (q6) { Q6KRepack.Row(w.RowSpan(r), codes, scales); Q6KRepack.Dequantize(codes, scales, actual); }
                else { Q5KRepack.Row(w.RowSpan(r), codes, scales); Q5KRepack.Dequantize(codes, scales, actual); }
                w.DequantizeRow(r, expected);
                Assert.Equal(expected, actual);
            }
        }
        finally { NativeMemory.AlignedFree((void*)mem); }
    }

    [Fact]
    public void Q6KRow_EachPieceAndHighWord_HoldOneContiguous32ElementRun()
    {
        // One super-block whose 6-bit code of element e is e mod 64: piece k byte i must hold the low nibbles of elements
        // 32k + i and 32k + 16 + i, and the kernel's word decoding (q6k_words) must give back codes 32k + 4t + m and
        // 32k + 16 + 4t + m for word t, byte m.
        var block = new byte[Q6KRepack.BlockBytes];
        for (int e = 0; e < 256; e++)
        {
            int n = e >> 7, j = (e >> 5) & 3, l = e & 31, q = e % 64;
            block[64 * n + 32 * (j & 1) + l] |= (byte)((q & 15) << (4 * (j >> 1)));
            block[128 + 32 * n + l] |= (byte)((q >> 4) << (2 * j));
        }
        var codes = new byte[Q6KRepack.CodeBytes];
        Q6KRepack.Row(block, codes, new byte[Q6KRepack.ScaleBytes]);
        for (int k = 0; k < 8; k++)
            for (int t = 0; t < 4; t++)
            {
                uint w = BitConverter.ToUInt32(codes, 16 * k + 4 * t), h = BitConverter.ToUInt32(codes, 128 + 8 * k + 4 * (t >> 1)) >> (4 * (t & 1));
                uint lo = (w & 0x0F0F0F0Fu) | ((h & 0x03030303u) << 4), hi = ((w >> 4) & 0x0F0F0F0Fu) | (((h >> 2) & 0x03030303u) << 4);
                for (int m = 0; m < 4; m++)
                {
                    Assert.Equal((32 * k + 4 * t + m) % 64, (int)(lo >> (8 * m)) & 255);
                    Assert.Equal((32 * k + 16 + 4 * t + m) % 64, (int)(hi >> (8 * m)) & 255);
                }
            }
    }

    [Fact]
    public void Q5KRow_EachPieceAndFifthBitWord_HoldOneContiguous32ElementRun()
    {
        // Code of element e = e mod 32: word t of piece k, with the fifth bits shifted in as q5k_words does, must give codes
        // 32k + 4t + m (low) and 32k + 16 + 4t + m (high) in byte m.
        var block = new byte[Q5KRepack.BlockBytes];
        for (int e = 0; e < 256; e++)
        {
            int c = e >> 6, h = (e >> 5) & 1, l = e & 31, q = e % 32;
            block[48 + 32 * c + l] |= (byte)((q & 15) << (4 * h));
            block[16 + l] |= (byte)((q >> 4) << (e >> 5));
        }
        var codes = new byte[Q5KRepack.CodeBytes];
        Q5KRepack.Row(block, codes, new byte[16]);
        for (int k = 0; k < 8; k++)
        {
            uint f = BitConverter.ToUInt32(codes, 128 + 4 * k);
            for (int t = 0; t < 4; t++)
            {
                uint w = BitConverter.ToUInt32(codes, 16 * k + 4 * t);
                uint lo = (w & 0x0F0F0F0Fu) | ((f << (4 - t)) & 0x10101010u), hi = ((w >> 4) & 0x0F0F0F0Fu) | ((f >> t) & 0x10101010u);
                for (int m = 0; m < 4; m++)
                {
                    Assert.Equal((32 * k + 4 * t + m) % 32, (int)(lo >> (8 * m)) & 255);
                    Assert.Equal((32 * k + 16 + 4 * t + m) % 32, (int)(hi >> (8 * m)) & 255);
                }
            }
        }
    }

    [Fact]
    public void Q6KByteSubtraction_EveryCode_IsCodeMinus32AsSignedByte()
    {
        // gemvq.cu's q6_sub32 on four codes at once; codes 0..63 in every byte position.
        for (int q = 0; q < 64; q++)
        {
            uint v = (uint)(q | (63 - q) << 8 | ((q * 7) % 64) << 16 | ((q * 13 + 5) % 64) << 24);
            uint r = ((v | 0x80808080u) - 0x20202020u) ^ 0x80808080u;
            for (int m = 0; m < 4; m++) Assert.Equal((int)((v >> (8 * m)) & 255) - 32, (sbyte)(r >> (8 * m)));
        }
    }

    [Fact]
    public void Row_WrongLength_Throws()
    {
        Assert.Throws<ArgumentException>(() => Q6KRepack.Row(new byte[200], new byte[192], new byte[18]));
        Assert.Throws<ArgumentException>(() => Q5KRepack.Row(new byte[176], new byte[100], new byte[16]));
    }

    [Fact]
    public void HostLayout_KQuants_KeepTheStoredByteCount()
    {
        foreach (var name in new[] { "Q5_K", "Q6_K" })
        {
            var (w, mem) = GpuBench.RandomMatrix(TensorFormats.ForName(name)!, 3, 512, 7);
            try
            {
                var (host, mat, _, _, kind, fallback) = GpuMatrix.HostLayout(w);
                Assert.False(fallback);
                Assert.InRange(host.Length, w.ByteCount, w.ByteCount + 15); // the scale array starts 16-byte aligned
                Assert.Equal(16, mat.Units);
                Assert.Contains(kind, GpuKernels.IntegerDotKinds);
            }
            finally { NativeMemory.AlignedFree((void*)mem); }
        }
    }
}
