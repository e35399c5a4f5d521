using System.Text.Json;
using System.Text.Json.Serialization;

namespace QuantServe.Api.OpenAi;

/// <summary>The <c>prompt</c> of a completion request: a string, an array of strings, an array of token ids, or an
/// array of token-id arrays. Each element is one prompt; a batch yields one choice (or <c>n</c>) per prompt.</summary>
[JsonConverter(typeof(PromptInputConverter))]
public sealed class PromptInput
{
    /// <summary>Text prompts (string or string[] form), or null.</summary>
    public IReadOnlyList<string>? Texts { get; init; }

    /// <summary>Token prompts (int[] or int[][] form), or null.</summary>
    public IReadOnlyList<int[]>? Tokens { get; init; }

    /// <summary>Number of prompts.</summary>
    public int Count => Texts?.Count ?? Tokens?.Count ?? 0;
}

/// <summary>Reads and writes the four shapes of <see cref="PromptInput"/>.</summary>
public sealed class PromptInputConverter : JsonConverter<PromptInput>
{
    /// <inheritdoc />
    public override PromptInput Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.String) return new PromptInput { Texts = [reader.GetString()!] };
        if (reader.TokenType != JsonTokenType.StartArray)
            throw new JsonException("prompt must be a string, an array of strings, an array of token ids or an array of token-id arrays");
        var texts = new List<string>();
        var flat = new List<int>();
        var nested = new List<int[]>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.String: texts.Add(reader.GetString()!); break;
                case JsonTokenType.Number: flat.Add(ReadToken(ref reader)); break;
                case JsonTokenType.StartArray:
                    var ids = new List<int>();
                    while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                    {
                        if (reader.TokenType != JsonTokenType.Number) throw new JsonException("token-id arrays may hold only integers");
                        ids.Add(ReadToken(ref reader));
                    }
                    nested.Add(ids.ToArray());
                    break;
                default: throw new JsonException("prompt arrays may hold strings, integers or integer arrays");
            }
        }
        int kinds = (texts.Count > 0 ? 1 : 0) + (flat.Count > 0 ? 1 : 0) + (nested.Count > 0 ? 1 : 0);
        if (kinds > 1) throw new JsonException("prompt arrays must not mix strings, token ids and token-id arrays");
        if (flat.Count > 0) return new PromptInput { Tokens = [flat.ToArray()] };
        if (nested.Count > 0) return new PromptInput { Tokens = nested };
        return new PromptInput { Texts = texts };
    }

    private static int ReadToken(ref Utf8JsonReader reader)
        => reader.TryGetInt32(out int v) ? v : throw new JsonException("token ids must be 32-bit integers");

    /// <inheritdoc />
    public override void Write(Utf8JsonWriter writer, PromptInput value, JsonSerializerOptions options)
    {
        if (value.Texts is { Count: 1 } one) { writer.WriteStringValue(one[0]); return; }
        writer.WriteStartArray();
        if (value.Texts is not null) foreach (var t in value.Texts) writer.WriteStringValue(t);
        else if (value.Tokens is { Count: 1 } single) foreach (int id in single[0]) writer.WriteNumberValue(id);
        else if (value.Tokens is not null)
            foreach (var ids in value.Tokens)
            {
                writer.WriteStartArray();
                foreach (int id in ids) writer.WriteNumberValue(id);
                writer.WriteEndArray();
            }
        writer.WriteEndArray();
    }
}
