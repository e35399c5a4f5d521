namespace QuantServe.Engine.Tests.Fuzzing;

/// <summary>
/// How many fuzz cases run and from which seed. <c>QUANTSERVE_FUZZ_CASES</c> scales every reader's case count
/// (a multiplier: 10 runs ten times the CI default); <c>QUANTSERVE_FUZZ_SEED</c> replaces the fixed base seed;
/// <c>QUANTSERVE_FUZZ_ONLY</c> (a case number) reruns a single case, which is how a reported failure is reproduced;
/// <c>QUANTSERVE_FUZZ_KEEP</c> names a folder where each failing mutant's bytes are saved.
/// </summary>
internal static class FuzzSettings
{
    /// <summary>The base seed CI uses.</summary>
    public const int DefaultSeed = 20261124;

    public static int Seed => Int("QUANTSERVE_FUZZ_SEED") ?? DefaultSeed;

    public static double Scale => double.TryParse(Environment.GetEnvironmentVariable("QUANTSERVE_FUZZ_CASES"),
        System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double s) && s > 0 ? s : 1;

    public static int? Only => Int("QUANTSERVE_FUZZ_ONLY");

    public static string? KeepFolder => Environment.GetEnvironmentVariable("QUANTSERVE_FUZZ_KEEP") is { Length: > 0 } k ? k : null;

    /// <summary>Cases to run for a reader whose CI default is <paramref name="ciDefault"/>, times <paramref name="slowFactor"/> for the Slow variant.</summary>
    public static int Cases(int ciDefault, int slowFactor = 1) => Math.Max(1, (int)Math.Round(ciDefault * slowFactor * Scale));

    /// <summary>The seed of case <paramref name="index"/> of <paramref name="reader"/>: independent of every other case, so one case reruns alone.</summary>
    public static int CaseSeed(string reader, int index)
    {
        uint h = 2166136261;
        foreach (char c in reader) h = (h ^ c) * 16777619;
        // SplitMix64 finaliser: HashCode.Combine is randomised per process, which would make seeds unrepeatable.
        ulong z = ((ulong)(uint)Seed << 32 | h) + 0x9E3779B97F4A7C15UL * (ulong)(index + 1);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return (int)(z ^ (z >> 31));
    }

    private static int? Int(string name) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), out int v) ? v : null;
}
