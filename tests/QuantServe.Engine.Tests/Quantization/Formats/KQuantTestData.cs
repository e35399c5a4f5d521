using QuantServe.Engine.Quantization.Formats;

namespace QuantServe.Engine.Tests.Quantization.Formats;

/// <summary>Deterministic synthetic data and format lookup for the k-quant tests.</summary>
internal static class KQuantTestData
{
    public static readonly string[] FormatNames = ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"];

    public static KQuantFormat Format(string name) => name switch
    {
        "Q4_K" => Q4KFormat.Instance,
        "Q6_K" => Q6KFormat.Instance,
        _ => (KQuantFormat)(QuantServe.Engine.Tensors.TensorFormats.ForName(name)
             ?? throw new InvalidOperationException($"{name} not registered")),
    };

    /// <summary>N(0,1) samples (Box–Muller).</summary>
    public static float[] Gaussian(int n, int seed)
    {
        var rng = new Random(seed);
        var v = new float[n];
        for (int i = 0; i < n; i++)
        {
            double u1 = 1 - rng.NextDouble(), u2 = rng.NextDouble();
            v[i] = (float)(Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
        return v;
    }

    /// <summary>Gaussian data with hard cases mixed in: zero runs, whole zero blocks, ±outliers, a tied ±max.</summary>
    public static float[] Nasty(int n, int seed)
    {
        var v = Gaussian(n, seed);
        var rng = new Random(seed + 1);
        for (int i = 0; i < n; i++)
        {
            int k = rng.Next(100);
            if (k < 8) v[i] = 0;
            else if (k < 10) v[i] *= 40;
        }
        if (n >= 512)
        {
            Array.Clear(v, 256, 256);
            v[300] = 3f;
        }
        if (n >= 768)
        {
            v[520] = -7f;
            v[530] = 7f;
        }
        return v;
    }

    public static double Rmse(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double s = 0;
        for (int i = 0; i < a.Length; i++) s += (double)(a[i] - b[i]) * (a[i] - b[i]);
        return Math.Sqrt(s / a.Length);
    }
}
