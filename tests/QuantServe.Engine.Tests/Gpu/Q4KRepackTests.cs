using System.Runtime.InteropServices;
using QuantServe.Engine.Gpu;
using QuantServe.Engine.Tensors;
using QuantServe.Engine.Tensors.Formats;

namespace QuantServe.Engine.Tests.Gpu;

/// <summary>The GPU's repacked Q4_K layout, emulated on the CPU, reproduces the CPU's dequantization bit for bit.</summary>
public unsafe class Q4KRepackTests
{
    [Theory]
    [InlineData(256)]
    [InlineData(2048)]
    [InlineData(14336)]
    public void Dequantize_RepackedRows_EqualDequantizeRow(int cols)
    {
        var (w, mem) = GpuBench.RandomMatrix(TensorFormats.ForName("Q4_K")!, 6, cols, 3);
        try
        {
            var codes = new byte[cols / 2];
            var headers = new byte[cols / 256 * 16];
            var expected = new float[cols];
            var actual = new float[cols];
            for (int r = 0; r < w.Rows; r++)
            {
                Q4KRepack.Row(w.RowSpan(r), codes, headers);
                Q4KRepack.Dequantize(codes, headers, actual);
                w.DequantizeRow(r, expected);
                Assert.Equal(expected, actual);
            }
        }
        finally { NativeMemory.AlignedFree((void*)mem); }
    }

    [Fact]
    public void Row_EachPiece_HoldsOneContiguous32ElementRun()
    {
        // One super-block whose codes are the element index mod 16: after repacking, piece k byte i must hold elements
        // 32k + i and 32k + 16 + i, i.e. (i, i) mod 16 in its two nibbles.
        var block = new byte[Q4KRepack.BlockBytes];
        for (int e = 0; e < 256; e++)
        {
            int c = e / 64, r = e % 64, b = 16 + 32 * c + (r & 31);
            block[b] |= (byte)(r < 32 ? e % 16 : (e % 16) << 4);
        }
        var codes = new byte[128];
        Q4KRepack.Row(block, codes, new byte[16]);
        for (int k = 0; k < 8; k++)
            for (int i = 0; i < 16; i++)
                Assert.Equal((32 * k + i) % 16 | ((32 * k + 16 + i) % 16) << 4, codes[16 * k + i]);
    }

    [Fact]
    public void Row_WrongLength_Throws()
        => Assert.Throws<ArgumentException>(() => Q4KRepack.Row(new byte[100], new byte[128], new byte[16]));

    [Fact]
    public void CanStack_SameIntegerDotFormatAndWidth_OnlyThen()
    {
        var q4k = TensorFormats.ForName("Q4_K")!;
        var q6k = TensorFormats.ForName("Q6_K")!;
        WeightMatrix M(TensorFormat f, int rows, int cols) => new("m", f, rows, cols, (byte*)0);
        Assert.True(GpuMatrix.CanStack([M(q4k, 2048, 2048), M(q4k, 256, 2048), M(q4k, 256, 2048)]));
        Assert.False(GpuMatrix.CanStack([M(q4k, 2048, 2048), M(q4k, 256, 2048), M(q6k, 256, 2048)]));
        Assert.False(GpuMatrix.CanStack([M(q4k, 2048, 2048), M(q4k, 256, 4096)]));
        Assert.True(GpuMatrix.CanStack([M(q6k, 2048, 2048), M(q6k, 2048, 2048)]));
        Assert.False(GpuMatrix.CanStack([M(q4k, 2048, 2048)]));
    }
}
