using System.Runtime.InteropServices;
using QuantServe.Engine.Gpu;
using QuantServe.Engine.Quantization.Formats;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Tests.Gpu;

/// <summary>The integer forms the integer-dot GEMV reads for codebook and int8 weights (no device needed).</summary>
public unsafe class GpuMatrixCodebookTableTests
{
    [Theory]
    [InlineData("nf4")]
    [InlineData("fp4")]
    public void CodebookTable_TwoByteDigits_ReproduceEveryCodeValueWithinHalfAStep(string name)
    {
        var values = ((CodebookFormat)TensorFormats.ForName(name)!).Values;
        var table = new byte[GpuMatrix.CodebookTableBytes];
        GpuMatrix.CodebookTable(values, table);
        for (int v = 0; v < 16; v++)
        {
            int i = 256 * (sbyte)table[v] + table[16 + v];
            Assert.InRange(Math.Abs(i / (double)GpuMatrix.CodebookScale - values[v]), 0, 0.5 / GpuMatrix.CodebookScale + 1e-9);
        }
    }

    [Fact]
    public void CodebookTable_ValueOutsideUnitRange_Throws()
    {
        var values = new float[16];
        values[3] = 1.5f;
        Assert.Throws<ArgumentException>(() => GpuMatrix.CodebookTable(values, new byte[GpuMatrix.CodebookTableBytes]));
    }

    [Theory]
    [InlineData("nf4", 800)]
    [InlineData("nf4-dq", 896)]
    [InlineData("fp4", 256)]
    public void HostLayout_Codebook_PutsTheDigitTableAtZAfterTheScales(string name, int cols)
    {
        var format = (CodebookFormat)TensorFormats.ForName(name)!;
        var (w, mem) = GpuBench.RandomMatrix(format, 3, cols, 5);
        try
        {
            var (host, mat, qBytes, sBytes, kind, _) = GpuMatrix.HostLayout(w);
            Assert.Equal(GpuKernelKind.Codebook, kind);
            Assert.Equal(0UL, mat.Z % 16);
            Assert.True((long)mat.Z >= qBytes + 3 * mat.SStride);
            Assert.Equal(qBytes + sBytes, (long)mat.Z + GpuMatrix.CodebookTableBytes);
            var expected = new byte[GpuMatrix.CodebookTableBytes];
            GpuMatrix.CodebookTable(format.Values, expected);
            Assert.Equal(expected, host.AsSpan((int)mat.Z, GpuMatrix.CodebookTableBytes).ToArray());
        }
        finally { NativeMemory.AlignedFree((void*)mem); }
    }

    [Fact]
    public void CanStack_Int8SameGroupAndWidth_StacksWithZeroPointsPerPart()
    {
        var format = TensorFormats.ForName("int8-asym")!;
        var (a, ma) = GpuBench.RandomMatrix(format, 4, 256, 1);
        var (b, mb) = GpuBench.RandomMatrix(format, 2, 256, 2);
        try
        {
            Assert.True(GpuMatrix.CanStack([a, b]));
            var (host, stacked, parts, _) = GpuMatrix.HostStacked([a, b]);
            Assert.NotEqual(0UL, stacked.Z);
            // Part 1's zero points start after part 0's four rows of groups and hold b's row 0 zero points.
            int ng = (int)(stacked.SStride / 4);
            var f = (IntGroupFormat)format;
            var rowB = b.RowSpan(0);
            Assert.Equal(rowB.Slice(ng * 4, ng).ToArray(), host.AsSpan((int)parts[1].Z, ng).ToArray());
            Assert.Equal(stacked.Z + (ulong)(4 * ng), parts[1].Z);
            Assert.Equal(f.GroupCount(256), ng);
        }
        finally { NativeMemory.AlignedFree((void*)ma); NativeMemory.AlignedFree((void*)mb); }
    }

    [Fact]
    public void HostStacked_Codebook_EveryPartSharesTheOneDigitTable()
    {
        var format = (CodebookFormat)TensorFormats.ForName("nf4-dq")!;
        var (a, ma) = GpuBench.RandomMatrix(format, 3, 320, 1);
        var (b, mb) = GpuBench.RandomMatrix(format, 5, 320, 2);
        try
        {
            Assert.True(GpuMatrix.CanStack([a, b]));
            var (host, stacked, parts, _) = GpuMatrix.HostStacked([a, b]);
            var expected = new byte[GpuMatrix.CodebookTableBytes];
            GpuMatrix.CodebookTable(format.Values, expected);
            Assert.Equal(expected, host.AsSpan((int)stacked.Z, GpuMatrix.CodebookTableBytes).ToArray());
            Assert.All(parts, p => Assert.Equal(stacked.Z, p.Z));
            Assert.Equal(stacked.S + (ulong)(3 * stacked.SStride), parts[1].S);
            // The stacked upload is the single-matrix layout of each part, rows in order.
            var (single, mat, _, _, _, _) = GpuMatrix.HostLayout(b);
            Assert.Equal(single.AsSpan((int)mat.S, (int)(5 * mat.SStride)).ToArray(), host.AsSpan((int)parts[1].S, (int)(5 * mat.SStride)).ToArray());
            Assert.Equal(single.AsSpan(0, (int)(5 * mat.QStride)).ToArray(), host.AsSpan((int)parts[1].Q, (int)(5 * mat.QStride)).ToArray());
        }
        finally { NativeMemory.AlignedFree((void*)ma); NativeMemory.AlignedFree((void*)mb); }
    }
}
