using System.Text.Json;
using QuantServe.Engine.Models;
using QuantServe.Engine.Formats;

namespace QuantServe.Engine.Formats.HuggingFace;

/// <summary>Finds a model folder's chat template (Jinja source).</summary>
public static class HuggingFaceChatTemplate
{
    /// <summary>
    /// The chat template of <paramref name="folder"/>, or null when it has none. Like transformers, a separate
    /// <c>chat_template.jinja</c> wins over <c>tokenizer_config.json</c>'s <c>chat_template</c>, which is either a
    /// string or a list of <c>{name, template}</c> from which the one named <c>default</c> is taken (null when none is).
    /// </summary>
    public static string? Load(string folder)
    {
        folder = Path.GetFullPath(folder);
        string jinja = Path.Combine(folder, "chat_template.jinja");
        if (File.Exists(jinja))
        {
            try { return File.ReadAllText(jinja); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new ModelLoadException(jinja, $"cannot read: {e.Message}", e);
            }
        }
        string path = Path.Combine(folder, "tokenizer_config.json");
        if (!File.Exists(path)) return null;
        using var doc = HuggingFaceJson.ParseFile(path);
        return JsonGuard.Read(path, () => Read(path, doc.RootElement));
    }

    private static string? Read(string path, JsonElement root)
    {
        if (!root.TryGetProperty("chat_template", out var template)) return null;
        switch (template.ValueKind)
        {
            case JsonValueKind.Null:
                return null;
            case JsonValueKind.String:
                return template.GetString();
            case JsonValueKind.Array:
                foreach (var entry in template.EnumerateArray())
                {
                    if (entry.ValueKind != JsonValueKind.Object
                        || !entry.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String
                        || !entry.TryGetProperty("template", out var text) || text.ValueKind != JsonValueKind.String)
                        throw new ModelLoadException(path, "chat_template list entries must be objects with string \"name\" and \"template\"");
                    if (name.GetString() == "default") return text.GetString();
                }
                // Only named special-purpose templates (tool_use, rag): the model still serves completions.
                return null;
            default:
                throw new ModelLoadException(path, $"chat_template is {template.ValueKind}, expected a string or a list of {{name, template}}");
        }
    }
}
