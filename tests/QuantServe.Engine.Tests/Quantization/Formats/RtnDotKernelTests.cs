using System.Runtime.InteropServices;
using QuantServe.Engine.Kernels.Cpu;
using QuantServe.Engine.Quantization.Formats;

namespace QuantServe.Engine.Tests.Quantization.Formats;

/// <summary>Every vector path of the RTN dot kernels against the scalar reference, and the scalar reference against the
/// float dot product of the dequantized weights.</summary>
public class RtnDotKernelTests
{
    private static readonly SimdPath[] VectorPaths = [SimdPath.V128, SimdPath.V256, SimdPath.V512];

    [Theory]
    [MemberData(nameof(RtnTestData.Formats), MemberType = typeof(RtnTestData))]
    public unsafe void DotRows_EveryPathLengths0To1024_MatchesScalarAndDequantizedReference(string name)
    {
        var format = RtnTestData.Format(name);
        var paths = VectorPaths.Where(RtnKernels.IsSupported).ToArray();
        const int rows = 3;
        for (int cols = 0; cols <= 1024; cols++)
        {
            var values = LegacyTestData.Gaussian(rows * cols, cols, withSpecials: cols % 3 == 0);
            var w = RtnTestData.Quantize(format, values, rows, cols, out var buffer);
            try
            {
                foreach (int batch in new[] { 1, 5 })
                {
                    int stride = format.ActivationBytes(cols) + 16;
                    var act = new byte[Math.Max(1, stride * batch)];
                    var xs = new float[batch][];
                    for (int b = 0; b < batch; b++)
                    {
                        xs[b] = LegacyTestData.Gaussian(cols, 7919 * cols + b, withSpecials: true);
                        if (cols > 10) xs[b][cols / 2] = 9f * (b % 2 == 0 ? 1 : -1); // an LLM.int8 outlier column
                        format.PrepareActivation(xs[b], act.AsSpan(b * stride));
                    }
                    var expected = new float[rows * batch];
                    format.DotRows(w, 0, rows, act, stride, batch, expected, rows, SimdPath.Scalar);

                    var row = new float[cols];
                    for (int r = 0; r < rows; r++)
                    {
                        w.DequantizeRow(r, row);
                        for (int b = 0; b < batch; b++)
                        {
                            double exact = 0, scale = 0, xmax = 0;
                            for (int j = 0; j < cols; j++) { exact += (double)row[j] * xs[b][j]; scale += Math.Abs(row[j]); }
                            foreach (float v in xs[b]) xmax = Math.Max(xmax, Math.Abs(v));
                            double tolerance = scale * xmax / 200 + 1e-4;
                            Assert.True(Math.Abs(expected[b * rows + r] - exact) <= tolerance,
                                $"{name} cols={cols} row={r} batch={b}: scalar {expected[b * rows + r]} vs dequantized {exact} (tolerance {tolerance})");
                        }
                    }

                    foreach (var path in paths)
                    {
                        var actual = new float[rows * batch];
                        format.DotRows(w, 0, rows, act, stride, batch, actual, rows, path);
                        for (int i = 0; i < actual.Length; i++)
                        {
                            if (format is not LlmInt8Format)
                            {
                                double tol = 1e-5 * (Math.Abs(expected[i]) + 1) * Math.Sqrt(cols + 1);
                                Assert.True(Math.Abs(actual[i] - expected[i]) <= tol, $"{name} {path} cols={cols} [{i}]: {actual[i]} vs scalar {expected[i]}");
                            }
                            else Assert.True(actual[i] == expected[i], $"{name} {path} cols={cols} [{i}]: {actual[i]} vs scalar {expected[i]} (LLM.int8 sums exactly in integers)");
                        }
                    }
                }
            }
            finally { NativeMemory.Free((void*)buffer); }
        }
    }

    [Fact]
    public unsafe void DotRows_RowRangeSubset_WritesOnlyThoseRows()
    {
        var format = RtnTestData.Format("int4-g32");
        const int rows = 9, cols = 100;
        var w = RtnTestData.Quantize(format, LegacyTestData.Gaussian(rows * cols, 1), rows, cols, out var buffer);
        try
        {
            var act = new byte[format.ActivationBytes(cols)];
            format.PrepareActivation(LegacyTestData.Gaussian(cols, 2), act);
            var all = new float[rows];
            format.DotRows(w, 0, rows, act, act.Length, 1, all, rows);
            var part = Enumerable.Repeat(float.NaN, rows).ToArray();
            format.DotRows(w, 3, 7, act, act.Length, 1, part, rows);
            for (int r = 0; r < rows; r++)
                if (r is >= 3 and < 7) Assert.Equal(all[r], part[r]);
                else Assert.True(float.IsNaN(part[r]));
        }
        finally { NativeMemory.Free((void*)buffer); }
    }
}
