namespace QuantServe.Api.Tests.TestSupport;

/// <summary>Finds external programs on PATH.</summary>
public static class ExternalTool
{
    /// <summary>The full path of <paramref name="name"/> on PATH, or null.</summary>
    public static string? Find(string name)
        => (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, name)).FirstOrDefault(File.Exists);
}

/// <summary>A fact that needs a real Prometheus server and promtool (Debian package <c>prometheus</c>, installed by
/// .ci/run); skipped, saying why, where they are absent. xunit 2 has no dynamic skip, so the attribute decides.</summary>
public sealed class PrometheusFactAttribute : FactAttribute
{
    public PrometheusFactAttribute()
    {
        if (ExternalTool.Find("prometheus") is null || ExternalTool.Find("promtool") is null)
            Skip = "prometheus/promtool not on PATH: install the Debian package 'prometheus' (bash .ci/run does) to run the real-scrape test";
    }
}
