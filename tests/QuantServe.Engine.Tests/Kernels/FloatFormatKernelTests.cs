using System.Runtime.InteropServices;
using QuantServe.Engine.Kernels.Cpu;
using QuantServe.Engine.Tensors;
using QuantServe.Engine.Tensors.Formats;

namespace QuantServe.Engine.Tests.Kernels;

/// <summary>
/// Every vector path of the F32/F16/BF16 dot kernels against the scalar reference path.
/// Tolerance: |vector − scalar| ≤ 1e-5 · Σ_c |W[r,c]·x[c]| + 1e-6 — the paths differ only in summation order and FMA
/// rounding, whose error is a few ulps of the sum of magnitudes.
/// </summary>
public unsafe class FloatFormatKernelTests
{
    public static TheoryData<string> Formats => new() { "F32", "F16", "BF16" };

    /// <summary>A matrix of random values in [-1, 1] stored in <paramref name="format"/>, in pinned memory.</summary>
    private static WeightMatrix RandomMatrix(FloatFormat format, int rows, int cols, Random random, out byte[] storage)
    {
        storage = GC.AllocateArray<byte>((int)Math.Max(1, format.RowBytes(cols) * rows), pinned: true);
        for (int i = 0; i < rows * cols; i++)
        {
            float v = (float)(random.NextDouble() * 2 - 1);
            switch (format.Name)
            {
                case "F32": MemoryMarshal.Cast<byte, float>(storage.AsSpan())[i] = v; break;
                case "F16": MemoryMarshal.Cast<byte, Half>(storage.AsSpan())[i] = (Half)v; break;
                default: MemoryMarshal.Cast<byte, ushort>(storage.AsSpan())[i] = (ushort)(BitConverter.SingleToUInt32Bits(v) >> 16); break;
            }
        }
        fixed (byte* p = storage) return new WeightMatrix("test", format, rows, cols, p);
    }

    private static float[] RandomActivations(int count, Random random)
    {
        var x = new float[count];
        for (int i = 0; i < count; i++) x[i] = (float)(random.NextDouble() * 2 - 1);
        return x;
    }

    private static void Compare(FloatFormat format, SimdPath path, int rows, int cols, int batch, Random random)
    {
        var w = RandomMatrix(format, rows, cols, random, out var storage);
        int stride = cols + 3; // a ragged stride, in floats
        var x = RandomActivations(Math.Max(1, batch * stride), random);
        var act = MemoryMarshal.AsBytes(x.AsSpan());
        var expected = new float[batch * rows];
        var actual = new float[batch * rows];
        format.DotRows(SimdPath.Scalar, w, 0, rows, act, stride * 4, batch, expected, rows);
        format.DotRows(path, w, 0, rows, act, stride * 4, batch, actual, rows);
        var row = new float[cols];
        for (int r = 0; r < rows; r++)
        {
            w.DequantizeRow(r, row);
            for (int b = 0; b < batch; b++)
            {
                double magnitude = 0;
                for (int c = 0; c < cols; c++) magnitude += Math.Abs(row[c] * x[b * stride + c]);
                double tolerance = 1e-5 * magnitude + 1e-6;
                float e = expected[b * rows + r], a = actual[b * rows + r];
                Assert.True(Math.Abs(e - a) <= tolerance, $"{format.Name} {path} cols={cols} batch={batch} row={r} b={b}: scalar {e}, vector {a}");
            }
        }
        GC.KeepAlive(storage);
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void DotRows_EveryPathEveryLength0To1024_MatchesScalar(string name)
    {
        var format = (FloatFormat)TensorFormats.ForName(name)!;
        var random = new Random(1234);
        foreach (var path in KernelPaths.Available.Where(p => p != SimdPath.Scalar))
            for (int cols = 0; cols <= 1024; cols++)
                Compare(format, path, rows: 5, cols, batch: cols % 2 == 0 ? 1 : 5, random);
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void DotRows_RaggedRowsAndBatches_MatchesScalar(string name)
    {
        var format = (FloatFormat)TensorFormats.ForName(name)!;
        var random = new Random(99);
        foreach (var path in KernelPaths.Available.Where(p => p != SimdPath.Scalar))
            for (int rows = 1; rows <= 9; rows++)
                for (int batch = 1; batch <= 9; batch++)
                    Compare(format, path, rows, cols: 77, batch, random);
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void DotRows_ScalarPath_MatchesDoublePrecisionSum(string name)
    {
        var format = (FloatFormat)TensorFormats.ForName(name)!;
        var random = new Random(5);
        const int rows = 6, cols = 300;
        var w = RandomMatrix(format, rows, cols, random, out var storage);
        var x = RandomActivations(cols, random);
        var y = new float[rows];
        format.DotRows(SimdPath.Scalar, w, 0, rows, MemoryMarshal.AsBytes(x.AsSpan()), cols * 4, 1, y, rows);
        var row = new float[cols];
        for (int r = 0; r < rows; r++)
        {
            w.DequantizeRow(r, row);
            double exact = 0, magnitude = 0;
            for (int c = 0; c < cols; c++) { exact += (double)row[c] * x[c]; magnitude += Math.Abs((double)row[c] * x[c]); }
            Assert.True(Math.Abs(exact - y[r]) <= 1e-5 * magnitude, $"row {r}: {y[r]} vs {exact}");
        }
        GC.KeepAlive(storage);
    }

    [Fact]
    public void DotRows_RowSubrange_WritesOnlyThoseRows()
    {
        var random = new Random(3);
        var w = RandomMatrix(F16Format.Instance, 10, 40, random, out var storage);
        var x = RandomActivations(40, random);
        var y = Enumerable.Repeat(-42f, 10).ToArray();
        F16Format.Instance.DotRows(w, 3, 7, MemoryMarshal.AsBytes(x.AsSpan()), 160, 1, y, 10);
        Assert.All(new[] { 0, 1, 2, 7, 8, 9 }, r => Assert.Equal(-42f, y[r]));
        Assert.All(new[] { 3, 4, 5, 6 }, r => Assert.NotEqual(-42f, y[r]));
        GC.KeepAlive(storage);
    }

    [Fact]
    public void F16Decoder_AllBitPatternsOnEveryPath_EqualHalfConversion()
    {
        var bits = GC.AllocateArray<ushort>(65536 + 16, pinned: true);
        for (int i = 0; i < 65536; i++) bits[i] = (ushort)i;
        fixed (ushort* p = bits)
        {
            byte* row = (byte*)p;
            for (int i = 0; i < 65536; i += 16)
            {
                var v512 = F16Decoder.Load512(row, i);
                var v256 = F16Decoder.Load256(row, i);
                var v128 = F16Decoder.Load128(row, i);
                var f512 = F16FiniteDecoder.Load512(row, i);
                var f256 = F16FiniteDecoder.Load256(row, i);
                var f128 = F16FiniteDecoder.Load128(row, i);
                for (int j = 0; j < 16; j++)
                {
                    float expected = (float)BitConverter.UInt16BitsToHalf((ushort)(i + j));
                    Check(expected, F16Decoder.Scalar(row, i + j), i + j);
                    Check(expected, v512[j], i + j);
                    if (j < 8) Check(expected, v256[j], i + j);
                    if (j < 4) Check(expected, v128[j], i + j);
                    if (!float.IsFinite(expected)) continue; // the finite decoder is only used on matrices without Inf/NaN
                    Check(expected, f512[j], i + j);
                    if (j < 8) Check(expected, f256[j], i + j);
                    if (j < 4) Check(expected, f128[j], i + j);
                }
            }
        }

        static void Check(float expected, float actual, int pattern)
        {
            if (float.IsNaN(expected)) Assert.True(float.IsNaN(actual), $"0x{pattern:X4}: expected NaN, got {actual}");
            else Assert.True(BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(actual), $"0x{pattern:X4}: expected {expected}, got {actual}");
        }
    }

    [Fact]
    public void DotRows_F16MatrixWithInfinity_PropagatesInfinityOnEveryPath()
    {
        var storage = GC.AllocateArray<Half>(2 * 40, pinned: true);
        for (int i = 0; i < storage.Length; i++) storage[i] = (Half)0.5f;
        storage[40 + 7] = Half.PositiveInfinity;
        fixed (Half* p = storage)
        {
            var w = new WeightMatrix("inf", F16Format.Instance, 2, 40, (byte*)p);
            Assert.False(F16Format.IsFinite(w));
            var x = Enumerable.Repeat(1f, 40).ToArray();
            foreach (var path in KernelPaths.Available)
            {
                var y = new float[2];
                F16Format.Instance.DotRows(path, w, 0, 2, MemoryMarshal.AsBytes(x.AsSpan()), 160, 1, y, 2);
                Assert.Equal(20f, y[0]);
                Assert.True(float.IsPositiveInfinity(y[1]), $"{path}: {y[1]}");
            }
        }
    }

    [Fact]
    public void DequantizeRow_EachFormat_MatchesStoredValues()
    {
        var random = new Random(11);
        foreach (var format in new FloatFormat[] { F32Format.Instance, F16Format.Instance, BF16Format.Instance })
        {
            var w = RandomMatrix(format, 3, 33, random, out var storage);
            var row = new float[33];
            w.DequantizeRow(2, row);
            for (int c = 0; c < 33; c++)
            {
                int i = 2 * 33 + c;
                float expected = format.Name switch
                {
                    "F32" => MemoryMarshal.Cast<byte, float>(storage)[i],
                    "F16" => (float)MemoryMarshal.Cast<byte, Half>(storage)[i],
                    _ => BitConverter.Int32BitsToSingle(MemoryMarshal.Cast<byte, ushort>(storage)[i] << 16),
                };
                Assert.Equal(expected, row[c]);
            }
        }
    }

    [Fact]
    public void FloatFormats_Registry_ResolvesByGgmlTypeAndName()
    {
        Assert.Same(F32Format.Instance, TensorFormats.ForGgml(GgmlType.F32));
        Assert.Same(F16Format.Instance, TensorFormats.ForGgml(GgmlType.F16));
        Assert.Same(BF16Format.Instance, TensorFormats.ForGgml(GgmlType.BF16));
        Assert.Same(BF16Format.Instance, TensorFormats.ForName("bf16"));
        Assert.Equal(2 * 100, F16Format.Instance.RowBytes(100));
    }
}
