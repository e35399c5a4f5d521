namespace QuantServe.Api.Tests.TestSupport;

/// <summary>Locates the shared test assets (../shared beside the checkout, or QUANTSERVE_SHARED).</summary>
public static class SharedAssets
{
    private static readonly Lazy<string> Root = new(Find);

    /// <summary>The shared folder.</summary>
    public static string Dir => Root.Value;

    /// <summary>A path inside the shared folder.</summary>
    public static string Path(params string[] parts) => System.IO.Path.Combine([Dir, .. parts]);

    /// <summary>stories260K checkpoint folder.</summary>
    public static string Stories260K => Path("models", "stories260K");

    private static string Find()
    {
        var env = Environment.GetEnvironmentVariable("QUANTSERVE_SHARED");
        if (!string.IsNullOrEmpty(env) && Directory.Exists(env)) return env;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "QuantServe.sln")))
            {
                var candidate = System.IO.Path.GetFullPath(System.IO.Path.Combine(dir.FullName, "..", "shared"));
                if (Directory.Exists(candidate)) return candidate;
            }
        }
        throw new DirectoryNotFoundException("shared test assets not found: expected ../shared beside the checkout or QUANTSERVE_SHARED");
    }
}
