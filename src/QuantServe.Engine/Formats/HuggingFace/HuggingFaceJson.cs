using System.Text.Json;
using QuantServe.Engine.Models;

namespace QuantServe.Engine.Formats.HuggingFace;

/// <summary>Typed access to the fields of a Hugging Face JSON file, with errors that name the file and the field.</summary>
internal readonly struct HuggingFaceJson
{
    public HuggingFaceJson(string path, JsonElement root, string prefix = "")
    {
        Path = path;
        Root = root;
        Prefix = prefix;
    }

    public string Path { get; }
    public JsonElement Root { get; }

    /// <summary>Dotted path of this object inside the file (<c>rope_scaling.</c>), so errors name nested fields fully.</summary>
    public string Prefix { get; }

    /// <summary>Tolerant of what hand-edited files contain: trailing commas and comments.</summary>
    public static readonly JsonDocumentOptions Options = new() { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip };

    /// <summary>Parses <paramref name="path"/>, which must hold a JSON object. The caller disposes the document.</summary>
    public static JsonDocument ParseFile(string path)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelLoadException(path, $"cannot read: {e.Message}", e);
        }
        if (!System.Text.Unicode.Utf8.IsValid(bytes)) throw new ModelLoadException(path, "malformed JSON: the file is not valid UTF-8");
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(bytes, Options);
        }
        catch (JsonException e)
        {
            throw new ModelLoadException(path, $"malformed JSON: {e.Message}", e);
        }
        if (doc.RootElement.ValueKind != JsonValueKind.Object)
        {
            doc.Dispose();
            throw new ModelLoadException(path, "not a JSON object");
        }
        return doc;
    }

    /// <summary>The field, or null when absent or JSON null.</summary>
    public JsonElement? Get(string name) =>
        Root.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

    public int RequiredInt(string name) =>
        Int(name) ?? throw new ModelLoadException(Path, $"required field \"{Prefix}{name}\" is missing");

    public int? Int(string name)
    {
        if (Get(name) is not { } v) return null;
        if (v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i)) return i;
        // Some exporters write integral values as floats (for example 2048.0).
        if (v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out double d) && d == Math.Floor(d) && Math.Abs(d) <= int.MaxValue) return (int)d;
        throw new ModelLoadException(Path, $"field \"{Prefix}{name}\" is {v.GetRawText()}, expected an integer");
    }

    public double? Double(string name)
    {
        if (Get(name) is not { } v) return null;
        if (v.ValueKind == JsonValueKind.Number) return v.GetDouble();
        throw new ModelLoadException(Path, $"field \"{Prefix}{name}\" is {v.GetRawText()}, expected a number");
    }

    public bool? Bool(string name)
    {
        if (Get(name) is not { } v) return null;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new ModelLoadException(Path, $"field \"{Prefix}{name}\" is {v.GetRawText()}, expected true or false"),
        };
    }

    public string? String(string name)
    {
        if (Get(name) is not { } v) return null;
        if (v.ValueKind == JsonValueKind.String) return v.GetString();
        throw new ModelLoadException(Path, $"field \"{Prefix}{name}\" is {v.GetRawText()}, expected a string");
    }

    /// <summary>An integer or a list of integers (as <c>eos_token_id</c> may be); empty when absent.</summary>
    public IReadOnlyList<int> IntOrList(string name)
    {
        if (Get(name) is not { } v) return [];
        if (v.ValueKind == JsonValueKind.Number) return [Int(name)!.Value];
        if (v.ValueKind == JsonValueKind.Array)
        {
            var result = new List<int>();
            foreach (var e in v.EnumerateArray())
            {
                if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt32(out int id))
                    throw new ModelLoadException(Path, $"field \"{Prefix}{name}\" holds {e.GetRawText()}, expected integers");
                result.Add(id);
            }
            return result;
        }
        throw new ModelLoadException(Path, $"field \"{Prefix}{name}\" is {v.GetRawText()}, expected an integer or a list of integers");
    }

    /// <summary>A nested object as its own accessor, or null when absent.</summary>
    public HuggingFaceJson? Object(string name)
    {
        if (Get(name) is not { } v) return null;
        if (v.ValueKind != JsonValueKind.Object)
            throw new ModelLoadException(Path, $"field \"{Prefix}{name}\" is {v.GetRawText()}, expected an object");
        return new HuggingFaceJson(Path, v, $"{Prefix}{name}.");
    }
}
