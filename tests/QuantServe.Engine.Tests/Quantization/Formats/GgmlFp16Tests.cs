using QuantServe.Engine.Quantization.Formats;

namespace QuantServe.Engine.Tests.Quantization.Formats;

public class GgmlFp16Tests
{
    // ggml's portable fp32 -> fp16 (from the FP16 library): scale the magnitude so the float adder does the
    // round-to-nearest-even, then assemble exponent and mantissa. Written here independently of System.Half.
    private static ushort GgmlReference(float f)
    {
        float scaleToInf = BitConverter.UInt32BitsToSingle(0x77800000);  // 2^112
        float scaleToZero = BitConverter.UInt32BitsToSingle(0x08800000); // 2^-110
        float b = (MathF.Abs(f) * scaleToInf) * scaleToZero;
        uint w = BitConverter.SingleToUInt32Bits(f);
        uint shl1 = w + w;
        uint sign = w & 0x80000000u;
        uint bias = shl1 & 0xFF000000u;
        if (bias < 0x71000000u) bias = 0x71000000u;
        b = BitConverter.UInt32BitsToSingle((bias >> 1) + 0x07800000u) + b;
        uint bits = BitConverter.SingleToUInt32Bits(b);
        uint expBits = (bits >> 13) & 0x7C00u;
        uint mantBits = bits & 0x0FFFu;
        return (ushort)((sign >> 16) | (shl1 > 0xFF000000u ? 0x7E00u : expBits + mantBits));
    }

    [Fact]
    public void FromFloat_RandomAndEdgeFloats_MatchesGgmlBitTrick()
    {
        var rng = new Random(7);
        var special = new[] { 0f, -0f, 1f, -1f, 65504f, 65519.99f, 65520f, 1e9f, float.PositiveInfinity, float.NegativeInfinity,
            float.NaN, 6.1035156e-05f, 5.9604645e-08f, 2.9802322e-08f, 2.9802326e-08f, 1e-10f, -3.0517578e-05f, float.Epsilon };
        foreach (var f in special) Assert.Equal(GgmlReference(f), GgmlFp16.FromFloat(f));
        // Every 1021st bit pattern (all exponents, both signs, rounding cases) plus random ones; one assert at the end.
        int mismatches = 0;
        uint firstBad = 0;
        for (long b = 0; b < 1L << 32; b += 1021) Check((uint)b);
        for (int i = 0; i < 300_000; i++) Check((uint)rng.NextInt64(0, 1L << 32));
        Assert.True(mismatches == 0, $"{mismatches} mismatches, first at 0x{firstBad:X8}");

        void Check(uint bits)
        {
            float f = BitConverter.UInt32BitsToSingle(bits);
            if (GgmlReference(f) != GgmlFp16.FromFloat(f) && mismatches++ == 0) firstBad = bits;
        }
        // Ties between neighbouring halves must go to the even one.
        for (int h = 0x0400; h < 0x7BFF; h += 97)
        {
            float lo = GgmlFp16.ToFloat((ushort)h), hi = GgmlFp16.ToFloat((ushort)(h + 1));
            float mid = (lo + hi) / 2;
            Assert.Equal((ushort)((h & 1) == 0 ? h : h + 1), GgmlFp16.FromFloat(mid));
        }
    }

    [Fact]
    public void ToFloat_EveryNonNaNHalf_RoundTripsExactly()
    {
        var bad = Enumerable.Range(0, 65536)
            .Where(h => !float.IsNaN(GgmlFp16.ToFloat((ushort)h)) && GgmlFp16.FromFloat(GgmlFp16.ToFloat((ushort)h)) != h)
            .ToList();
        Assert.Empty(bad);
        Assert.Equal(1.0f, GgmlFp16.ToFloat(0x3C00));
        Assert.Equal(-2.0f, GgmlFp16.ToFloat(0xC000));
        Assert.Equal(5.9604645e-08f, GgmlFp16.ToFloat(0x0001));
    }
}
