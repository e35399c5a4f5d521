using System.Runtime.InteropServices;
using QuantServe.Engine.Kernels.Cpu;
using QuantServe.Engine.Tensors;
using QuantServe.Engine.Tensors.Formats;

namespace QuantServe.Engine.Tests.Kernels;

public unsafe class MatMulTests
{
    private static WeightMatrix F16Matrix(int rows, int cols, int seed, out Half[] storage)
    {
        var random = new Random(seed);
        storage = GC.AllocateArray<Half>(rows * cols, pinned: true);
        for (int i = 0; i < storage.Length; i++) storage[i] = (Half)(random.NextDouble() * 2 - 1);
        fixed (Half* p = storage) return new WeightMatrix($"w{seed}", F16Format.Instance, rows, cols, (byte*)p);
    }

    private static float[] Reference(Half[] w, int rows, int cols, float[] x, int batch, int xStride)
    {
        var y = new float[batch * rows];
        for (int b = 0; b < batch; b++)
            for (int r = 0; r < rows; r++)
            {
                double s = 0;
                for (int c = 0; c < cols; c++) s += (double)(float)w[r * cols + c] * x[b * xStride + c];
                y[b * rows + r] = (float)s;
            }
        return y;
    }

    private static void AssertClose(float[] expected, ReadOnlySpan<float> actual, int batch, int rows, int stride)
    {
        for (int b = 0; b < batch; b++)
            for (int r = 0; r < rows; r++)
                Assert.True(Math.Abs(expected[b * rows + r] - actual[b * stride + r]) < 1e-3f, $"b={b} r={r}");
    }

    [Theory]
    [InlineData(1, 37, 172)]
    [InlineData(3, 64, 64)]
    [InlineData(6, 130, 96)]
    [InlineData(17, 200, 33)]
    public void Multiply_F16Matrix_MatchesDoublePrecisionReference(int batch, int rows, int cols)
    {
        using var pool = new WorkerPool(2);
        var mm = new MatMul(pool);
        var w = F16Matrix(rows, cols, rows, out var storage);
        var random = new Random(1);
        int xStride = cols + 5;
        var x = Enumerable.Range(0, batch * xStride).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        int yStride = rows + 2;
        var y = new float[batch * yStride];
        mm.Multiply(w, x, batch, xStride, y, yStride);
        AssertClose(Reference(storage, rows, cols, x, batch, xStride), y, batch, rows, yStride);
    }

    [Fact]
    public void Multiply_ThreeFusedMatrices_MatchSeparateProducts()
    {
        using var pool = new WorkerPool(2);
        var mm = new MatMul(pool);
        const int cols = 48, batch = 5;
        var wq = F16Matrix(40, cols, 1, out var sq);
        var wk = F16Matrix(20, cols, 2, out var sk);
        var wv = F16Matrix(20, cols, 3, out var sv);
        var random = new Random(2);
        var x = Enumerable.Range(0, batch * cols).Select(_ => (float)random.NextDouble()).ToArray();
        var q = new float[batch * 40];
        var k = new float[batch * 20];
        var v = new float[batch * 20];
        mm.Multiply(x, batch, cols, wq, q, 40, wk, k, 20, wv, v, 20);
        AssertClose(Reference(sq, 40, cols, x, batch, cols), q, batch, 40, 40);
        AssertClose(Reference(sk, 20, cols, x, batch, cols), k, batch, 20, 20);
        AssertClose(Reference(sv, 20, cols, x, batch, cols), v, batch, 20, 20);
    }

    [Fact]
    public void Multiply_OutputTooSmall_ThrowsNamingMatrix()
    {
        var mm = new MatMul(new WorkerPool(1));
        var w = F16Matrix(8, 8, 9, out _);
        var ex = Assert.Throws<ArgumentException>(() => mm.Multiply(w, new float[16], 2, 8, new float[10], 8));
        Assert.Contains("w9", ex.Message);
    }
}
