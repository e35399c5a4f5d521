using QuantServe.Engine.Quantization.Formats;

namespace QuantServe.Engine.Tests.Quantization.Formats;

public unsafe class Q8KActivationsTests
{
    [Theory]
    [InlineData(KQuantKernelPath.Vector128)]
    [InlineData(KQuantKernelPath.Avx2)]
    [InlineData(KQuantKernelPath.Avx512)]
    public void Quantize_VectorPath_EqualsScalarBytes(KQuantKernelPath path)
    {
        if (!KQuantKernels.IsSupported(path)) return;
        for (int seed = 0; seed < 6; seed++)
        {
            var x = KQuantTestData.Nasty(1024, seed);
            var s = new byte[Q8KActivations.ActivationBytes(1024)];
            var v = new byte[s.Length];
            Q8KActivations.Quantize(x, s, KQuantKernelPath.Scalar);
            Q8KActivations.Quantize(x, v, path);
            Assert.Equal(s, v);
        }
    }

    [Fact]
    public void Quantize_Block_MatchesGgmlDefinition()
    {
        var x = KQuantTestData.Nasty(768, 42);
        var q = new byte[Q8KActivations.ActivationBytes(768)];
        Q8KActivations.Quantize(x, q);
        fixed (byte* p = q)
        {
            for (int i = 0; i < 3; i++)
            {
                var b = (BlockQ8K*)(p + i * Q8KActivations.BlockBytes);
                float amax = 0, max = 0;
                for (int j = 0; j < 256; j++)
                    if (Math.Abs(x[256 * i + j]) > amax) { amax = Math.Abs(x[256 * i + j]); max = x[256 * i + j]; }
                if (amax == 0)
                {
                    Assert.Equal(0f, b->D);
                    for (int j = 0; j < 256; j++) Assert.Equal(0, b->Qs[j]);
                    continue;
                }
                float iscale = -127f / max;
                Assert.Equal(1 / iscale, b->D);
                for (int j = 0; j < 256; j++)
                    Assert.Equal(Math.Min(127, (int)MathF.Round(iscale * x[256 * i + j], MidpointRounding.ToEven)), b->Qs[j]);
                for (int g = 0; g < 16; g++)
                {
                    int s = 0;
                    for (int k = 0; k < 16; k++) s += b->Qs[16 * g + k];
                    Assert.Equal(s, b->BSums[g]);
                }
            }
        }
    }

    [Fact]
    public void Quantize_TiedMagnitudes_UsesFirstAsSignedMax()
    {
        var x = new float[256];
        x[3] = -2f;
        x[9] = 2f;
        var q = new byte[Q8KActivations.BlockBytes];
        Q8KActivations.Quantize(x, q);
        fixed (byte* p = q)
        {
            var b = (BlockQ8K*)p;
            // max = x[3] = −2 (the first of the tied magnitudes) → iscale = +63.5, D > 0.
            Assert.Equal(-127, b->Qs[3]);
            Assert.Equal(127, b->Qs[9]);
            Assert.True(b->D > 0);
        }
    }

    [Fact]
    public void Quantize_LengthNotMultipleOf256_Throws()
    {
        Assert.Throws<ArgumentException>(() => Q8KActivations.Quantize(new float[100], new byte[1000]));
        Assert.Throws<ArgumentException>(() => Q8KActivations.Quantize(new float[256], new byte[291]));
    }
}
