using System.Text.Json;
using System.Text.Json.Serialization;

namespace QuantServe.Api.OpenAi;

/// <summary>The <c>stop</c> field: a string or up to four strings. Generation ends before the first occurrence, which is never returned.</summary>
[JsonConverter(typeof(StopInputConverter))]
public sealed class StopInput
{
    /// <summary>The stop sequences.</summary>
    public IReadOnlyList<string> Sequences { get; init; } = [];
}

/// <summary>Reads a string or a string array as <see cref="StopInput"/>.</summary>
public sealed class StopInputConverter : JsonConverter<StopInput>
{
    /// <inheritdoc />
    public override StopInput Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.String) return new StopInput { Sequences = [reader.GetString()!] };
        if (reader.TokenType != JsonTokenType.StartArray) throw new JsonException("stop must be a string or an array of strings");
        var list = new List<string>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.String) throw new JsonException("stop arrays may hold only strings");
            list.Add(reader.GetString()!);
        }
        return new StopInput { Sequences = list };
    }

    /// <inheritdoc />
    public override void Write(Utf8JsonWriter writer, StopInput value, JsonSerializerOptions options)
    {
        writer.WriteStartArray();
        foreach (var s in value.Sequences) writer.WriteStringValue(s);
        writer.WriteEndArray();
    }
}
