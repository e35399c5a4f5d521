using QuantServe.Engine.Quantization.Formats;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Tests.Quantization.Formats;

/// <summary>Shared inputs for the legacy-format tests: the format list and reproducible random data.</summary>
internal static class LegacyTestData
{
    public static readonly string[] Names = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"];

    public static TheoryData<string> Formats => new(Names);

    public static LegacyQuantFormat Format(string name) =>
        (LegacyQuantFormat)(TensorFormats.ForName(name) ?? throw new InvalidOperationException($"{name} is not registered"));

    /// <summary>N(0,1) values with some all-zero blocks, scattered exact zeros and ±20σ outliers.</summary>
    public static float[] Gaussian(int n, int seed, bool withSpecials = true)
    {
        var rng = new Random(seed);
        var x = new float[n];
        for (int i = 0; i < n; i++)
        {
            double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
            x[i] = (float)(Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
        if (!withSpecials) return x;
        for (int b = 0; b < n / 32; b++)
        {
            int kind = rng.Next(8);
            if (kind == 0) Array.Clear(x, b * 32, 32);                          // all-zero block
            else if (kind == 1) x[b * 32 + rng.Next(32)] *= 20;                 // one outlier
            else if (kind == 2) for (int j = 0; j < 32; j += 3) x[b * 32 + j] = 0; // many zeros
            else if (kind == 3) for (int j = 0; j < 32; j++) x[b * 32 + j] = MathF.Abs(x[b * 32 + j]) + 3; // all positive, offset
        }
        return x;
    }

    /// <summary>The floats a prepared Q8_0 / Q8_1 activation vector stands for (q·d).</summary>
    public static float[] DequantizeActivation(ReadOnlySpan<byte> a, int cols, bool q8_1)
    {
        int bb = q8_1 ? 36 : 34, qs = q8_1 ? 4 : 2;
        var x = new float[cols];
        for (int i = 0; i < cols / 32; i++)
        {
            float d = GgmlFp16.ToFloat(BitConverter.ToUInt16(a[(i * bb)..]));
            for (int j = 0; j < 32; j++) x[i * 32 + j] = (sbyte)a[i * bb + qs + j] * d;
        }
        return x;
    }

    public static IEnumerable<LegacyKernelPath> SupportedPaths() =>
        Enum.GetValues<LegacyKernelPath>().Where(LegacyKernels.IsSupported);
}
