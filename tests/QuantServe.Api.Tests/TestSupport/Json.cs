using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace QuantServe.Api.Tests.TestSupport;

/// <summary>Small helpers for posting raw JSON and reading responses as JSON trees.</summary>
public static class Json
{
    public static async Task<(HttpResponseMessage Response, JsonNode Body)> PostAsync(HttpClient client, string path, object body)
    {
        var response = await client.PostAsJsonAsync(path, body);
        return (response, JsonNode.Parse(await response.Content.ReadAsStringAsync())!);
    }

    public static async Task<(HttpResponseMessage Response, JsonNode Body)> PostRawAsync(HttpClient client, string path, string json, string contentType = "application/json")
    {
        var response = await client.PostAsync(path, new StringContent(json, Encoding.UTF8, contentType));
        return (response, JsonNode.Parse(await response.Content.ReadAsStringAsync())!);
    }

    /// <summary>The data payloads of a server-sent event stream, up to and including [DONE].</summary>
    public static async Task<List<string>> ReadEventsAsync(HttpResponseMessage response)
    {
        var events = new List<string>();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        while (await reader.ReadLineAsync() is { } line)
            if (line.StartsWith("data: ", StringComparison.Ordinal)) events.Add(line[6..]);
        return events;
    }

    /// <summary>Asserts OpenAI's error envelope with the expected status, type and (optionally) param/code.</summary>
    public static void AssertError(HttpResponseMessage response, JsonNode body, int status, string type, string? param = null, string? code = null)
    {
        Assert.Equal(status, (int)response.StatusCode);
        var error = body["error"]!.AsObject();
        Assert.Equal(type, (string?)error["type"]);
        Assert.False(string.IsNullOrWhiteSpace((string?)error["message"]));
        Assert.True(error.ContainsKey("param") && error.ContainsKey("code"), "param and code must be present (null allowed)");
        if (param is not null) Assert.Equal(param, (string?)error["param"]);
        if (code is not null) Assert.Equal(code, (string?)error["code"]);
    }

    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web);
}
