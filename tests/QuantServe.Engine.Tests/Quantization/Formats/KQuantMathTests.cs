using QuantServe.Engine.Quantization.Formats;

namespace QuantServe.Engine.Tests.Quantization.Formats;

public class KQuantMathTests
{
    [Fact]
    public void Fp16ToFp32_AllBitPatterns_EqualsRuntimeHalfConversion()
    {
        for (int h = 0; h < 65536; h++)
        {
            float expected = (float)BitConverter.UInt16BitsToHalf((ushort)h);
            float actual = KQuantMath.Fp16ToFp32((ushort)h);
            if (float.IsNaN(expected)) Assert.True(float.IsNaN(actual), $"0x{h:X4}");
            else Assert.Equal(BitConverter.SingleToUInt32Bits(expected), BitConverter.SingleToUInt32Bits(actual));
        }
    }

    [Theory]
    [InlineData(0.5f, 0)]
    [InlineData(1.5f, 2)]
    [InlineData(2.5f, 2)]
    [InlineData(-0.5f, 0)]
    [InlineData(-1.5f, -2)]
    [InlineData(3.49f, 3)]
    [InlineData(-4194303f, -4194303)]
    public void NearestInt_Ties_RoundToEven(float x, int expected) => Assert.Equal(expected, KQuantMath.NearestInt(x));

    [Fact]
    public void Fp32ToFp16_RoundsToNearestEven()
    {
        // 1 + 2^-11 lies exactly between 1 and the next half (1 + 2^-10): ties go to the even mantissa (1.0).
        Assert.Equal((ushort)0x3C00, KQuantMath.Fp32ToFp16(1f + MathF.Pow(2, -11)));
        // 1 + 3·2^-11 lies between 1 + 2^-10 (odd) and 1 + 2^-9 (even): rounds up to even.
        Assert.Equal((ushort)0x3C02, KQuantMath.Fp32ToFp16(1f + 3 * MathF.Pow(2, -11)));
        Assert.Equal((ushort)0x0001, KQuantMath.Fp32ToFp16(MathF.Pow(2, -24)));
        Assert.Equal((ushort)0x7C00, KQuantMath.Fp32ToFp16(70000f));
    }
}
