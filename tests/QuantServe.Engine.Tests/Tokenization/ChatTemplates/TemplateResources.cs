using System.Text.Json;

namespace QuantServe.Engine.Tests.Tokenization.ChatTemplates;

/// <summary>The chat-template test resources in the source tree (real model templates, jinja2-rendered references).</summary>
internal static class TemplateResources
{
    private static readonly Lazy<string> Root = new(() =>
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "tests", "QuantServe.Engine.Tests", "Tokenization", "ChatTemplates", "Templates");
            if (Directory.Exists(candidate)) return candidate;
        }
        throw new DirectoryNotFoundException("chat template test resources not found above " + AppContext.BaseDirectory);
    });

    public static string Dir => Root.Value;

    public static JsonElement Load(string file) => JsonDocument.Parse(File.ReadAllText(Path.Combine(Dir, file))).RootElement;

    public static IEnumerable<string> ModelFiles() =>
        Directory.GetFiles(Dir, "*.json").Select(Path.GetFileName).Where(f => f != "jinja-cases.json").Order().Cast<string>();
}
