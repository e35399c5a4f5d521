using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace QuantServe.Api.OpenAi.Chat;

/// <summary>One message of a conversation.</summary>
public sealed class ChatMessage
{
    /// <summary><c>system</c>, <c>developer</c>, <c>user</c> or <c>assistant</c>.</summary>
    /// <example>user</example>
    public string? Role { get; init; }

    /// <summary>Text, or an array of content parts of which only <c>{"type":"text","text":…}</c> is supported.</summary>
    /// <example>Tell me a story about a cat.</example>
    public ChatContent? Content { get; init; }

    /// <summary>Optional participant name.</summary>
    public string? Name { get; init; }
}

/// <summary>Message content: a string or an array of text parts (joined with newlines).</summary>
[JsonConverter(typeof(ChatContentConverter))]
public sealed class ChatContent
{
    /// <summary>The content's text.</summary>
    public required string Text { get; init; }
}

/// <summary>Reads string or text-part array content.</summary>
public sealed class ChatContentConverter : JsonConverter<ChatContent>
{
    /// <inheritdoc />
    public override ChatContent Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.String) return new ChatContent { Text = reader.GetString()! };
        if (reader.TokenType != JsonTokenType.StartArray) throw new JsonException("content must be a string or an array of content parts");
        var sb = new StringBuilder();
        using var doc = JsonDocument.ParseValue(ref reader);
        foreach (var part in doc.RootElement.EnumerateArray())
        {
            if (part.ValueKind != JsonValueKind.Object || !part.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String)
                throw new JsonException("each content part must be an object with a type");
            if (type.GetString() != "text")
                throw new JsonException($"content part type '{type.GetString()}' is not supported: only text parts are");
            if (!part.TryGetProperty("text", out var text) || text.ValueKind != JsonValueKind.String)
                throw new JsonException("a text content part needs a string 'text'");
            if (sb.Length > 0) sb.Append('\n');
            sb.Append(text.GetString());
        }
        return new ChatContent { Text = sb.ToString() };
    }

    /// <inheritdoc />
    public override void Write(Utf8JsonWriter writer, ChatContent value, JsonSerializerOptions options)
        => writer.WriteStringValue(value.Text);
}
