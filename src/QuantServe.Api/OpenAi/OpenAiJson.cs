using System.Text.Json;
using System.Text.Json.Serialization;

namespace QuantServe.Api.OpenAi;

/// <summary>The JSON conventions of the OpenAI protocol: snake_case names, absent nulls, numbers strictly typed.</summary>
public static class OpenAiJson
{
    /// <summary>Applies the conventions to <paramref name="options"/> (used for HTTP JSON and for SSE chunks).</summary>
    public static void Configure(JsonSerializerOptions options)
    {
        options.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower;
        options.DictionaryKeyPolicy = null;
        options.DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull;
        options.NumberHandling = JsonNumberHandling.Strict;
        options.AllowTrailingCommas = false;
        options.ReadCommentHandling = JsonCommentHandling.Disallow;
        options.UnmappedMemberHandling = JsonUnmappedMemberHandling.Skip;
    }

    /// <summary>A standalone options instance with the conventions (for SSE serialisation).</summary>
    public static readonly JsonSerializerOptions Options = Create();

    private static JsonSerializerOptions Create()
    {
        var o = new JsonSerializerOptions(JsonSerializerDefaults.Web);
        Configure(o);
        o.MakeReadOnly(populateMissingResolver: true);
        return o;
    }
}
