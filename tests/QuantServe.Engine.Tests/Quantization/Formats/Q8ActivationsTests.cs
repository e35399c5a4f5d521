using QuantServe.Engine.Quantization.Formats;

namespace QuantServe.Engine.Tests.Quantization.Formats;

public class Q8ActivationsTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Quantize_VectorPath_EqualsScalarBytes(bool q8_1)
    {
        var x = LegacyTestData.Gaussian(32 * 256, 11);
        int bytes = q8_1 ? Q8Activations.Q8_1Bytes(x.Length) : Q8Activations.Q8_0Bytes(x.Length);
        var scalar = new byte[bytes];
        Q8Activations.Quantize(x, scalar, q8_1, LegacyKernelPath.Scalar);
        foreach (var path in LegacyTestData.SupportedPaths())
        {
            var v = new byte[bytes];
            Q8Activations.Quantize(x, v, q8_1, path);
            Assert.Equal(scalar, v);
        }
    }

    [Fact]
    public void QuantizeQ8_0_HalfwayValues_RoundToEvenLikeGgmlX86()
    {
        // amax = 127 makes id exactly 1, so x·id is x itself and the ties are visible.
        var x = new float[32];
        x[0] = 127; x[1] = 2.5f; x[2] = 3.5f; x[3] = -2.5f; x[4] = 0.5f; x[5] = -0.5f; x[6] = 1.4999f; x[7] = -126.5f;
        var q = new byte[Q8Activations.Q8_0Bytes(32)];
        Q8Activations.QuantizeQ8_0(x, q);
        Assert.Equal(GgmlFp16.FromFloat(1f), BitConverter.ToUInt16(q));
        Assert.Equal(new sbyte[] { 127, 2, 4, -2, 0, 0, 1, -126 }, q[2..10].Select(b => (sbyte)b).ToArray());
    }

    [Fact]
    public void QuantizeQ8_1_Block_StoresScaleTimesSum()
    {
        var x = LegacyTestData.Gaussian(64, 3, withSpecials: false);
        var a = new byte[Q8Activations.Q8_1Bytes(64)];
        Q8Activations.QuantizeQ8_1(x, a);
        Assert.Equal(72 + 16, a.Length);
        var scales = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(a.AsSpan(Q8Activations.ScalesOffset(2, true)));
        for (int i = 0; i < 2; i++)
        {
            float amax = x.Skip(32 * i).Take(32).Max(MathF.Abs);
            float d = amax / 127f;
            Assert.Equal(GgmlFp16.FromFloat(d), BitConverter.ToUInt16(a, 36 * i));
            int sum = 0;
            for (int j = 0; j < 32; j++) sum += (sbyte)a[36 * i + 4 + j];
            Assert.Equal(GgmlFp16.FromFloat(d * sum), BitConverter.ToUInt16(a, 36 * i + 2));
            Assert.Equal(GgmlFp16.ToFloat(BitConverter.ToUInt16(a, 36 * i)), scales[i]);
            Assert.Equal(GgmlFp16.ToFloat(BitConverter.ToUInt16(a, 36 * i + 2)), scales[2 + i]);
            for (int j = 0; j < 32; j++)
                Assert.True(MathF.Abs((sbyte)a[36 * i + 4 + j] * d - x[32 * i + j]) <= d * 0.5001f);
        }
    }

    [Fact]
    public void QuantizeQ8_0_ZeroBlock_GivesZeroScaleAndQuants()
    {
        var a = new byte[Q8Activations.Q8_0Bytes(32)];
        a.AsSpan().Fill(0xAB);
        Q8Activations.QuantizeQ8_0(new float[32], a);
        Assert.All(a, b => Assert.Equal(0, b));
    }
}
