using System.Net;
using System.Text.Json.Nodes;
using QuantServe.Api.Tests.TestSupport;

namespace QuantServe.Api.Tests.Security;

public sealed class ApiKeyTests(SecuredServer server) : IClassFixture<SecuredServer>
{
    private const string Completion = """{"model":"stories260K","prompt":"Once","max_tokens":2,"temperature":0}""";
    private const string Chat = """{"model":"stories260K","messages":[{"role":"user","content":"Hi"}],"max_tokens":2,"temperature":0}""";

    /// <summary>Every route family: method, path, body, and the scope it needs (null = open).</summary>
    public static TheoryData<string, string, string?, string?> Routes => new()
    {
        { "GET", "/v1/models", null, "inference" },
        { "GET", "/v1/models/stories260K", null, "inference" },
        { "POST", "/v1/completions", Completion, "inference" },
        { "POST", "/v1/chat/completions", Chat, "inference" },
        { "GET", "/quantize", null, "admin" },
        { "POST", "/quantize", """{"model":"stories260K","method":"int8"}""", "admin" },
        { "GET", "/models/stories260K/vram?context=64", null, "admin" },
        { "POST", "/models/stories260K/plan", """{"memory_budget_bytes":100000000}""", "admin" },
        { "GET", "/health/live", null, null },
        { "GET", "/health/ready", null, null },
        { "GET", "/metrics", null, null },
        { "GET", "/swagger/v1/swagger.json", null, null },
    };

    private static readonly Dictionary<string, (string? Key, string[] Scopes)> Keys = new()
    {
        ["none"] = (null, []),
        ["inference"] = (SecuredServer.InferenceKey, ["inference"]),
        ["admin"] = (SecuredServer.AdminKey, ["admin"]),
        ["both"] = (SecuredServer.BothKey, ["inference", "admin"]),
    };

    [Theory]
    [MemberData(nameof(Routes))]
    public async Task Route_EveryKeyKind_AllowedOnlyWithItsScope(string method, string path, string? body, string? scope)
    {
        foreach (var (kind, (key, scopes)) in Keys)
        {
            var r = await server.Client.SendAsync(server.Request(new HttpMethod(method), path, key, body));
            string text = await r.Content.ReadAsStringAsync();
            int expected = scope is null || scopes.Contains(scope) ? -1 : key is null ? 401 : 403;
            if (expected == -1)
            {
                Assert.True((int)r.StatusCode is not (401 or 403 or 429), $"{method} {path} with {kind} key: {(int)r.StatusCode} {text}");
                continue;
            }
            Assert.True((int)r.StatusCode == expected, $"{method} {path} with {kind} key: expected {expected}, got {(int)r.StatusCode} {text}");
            AssertShape(path, r, text, expected, key is null ? "missing_api_key" : "insufficient_scope");
            Assert.StartsWith("Bearer", r.Headers.WwwAuthenticate.ToString());
        }
    }

    [Theory]
    [InlineData("/v1/models")]
    [InlineData("/quantize")]
    public async Task Request_WrongKey_401InvalidApiKeyWithoutEchoingIt(string path)
    {
        const string wrong = "sk-wrong-0123456789abcdef0123";
        var r = await server.Client.SendAsync(server.Request(HttpMethod.Get, path, wrong));
        string text = await r.Content.ReadAsStringAsync();
        AssertShape(path, r, text, 401, "invalid_api_key");
        Assert.DoesNotContain(wrong, text);
    }

    [Theory]
    [InlineData("/v1/models", "Basic dXNlcjpwYXNz")]
    [InlineData("/v1/models", "Bearer")]
    [InlineData("/v1/models", "Bearer    ")]
    [InlineData("/quantize", "sk-both-0123456789abcdef012345")]
    [InlineData("/quantize", "Token sk-both-0123456789abcdef012345")]
    public async Task Request_MalformedAuthorization_401(string path, string header)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.TryAddWithoutValidation("Authorization", header);
        var r = await server.Client.SendAsync(request);
        AssertShape(path, r, await r.Content.ReadAsStringAsync(), 401, "invalid_authorization_header");
    }

    [Theory]
    [InlineData("/health/live")]
    [InlineData("/metrics")]
    public async Task OpenRoute_WrongKey_StillServed(string path)
    {
        var r = await server.Client.SendAsync(server.Request(HttpMethod.Get, path, "sk-wrong-0123456789abcdef0123"));
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
    }

    [Fact]
    public async Task Request_KeyWithTruncatedOrExtendedSecret_401()
    {
        foreach (var key in new[] { SecuredServer.BothKey[..^1], SecuredServer.BothKey + "x", SecuredServer.BothKey.ToUpperInvariant() })
        {
            var r = await server.Client.SendAsync(server.Request(HttpMethod.Get, "/v1/models", key));
            Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
        }
    }

    [Fact]
    public async Task Completion_InferenceKey_GeneratesText()
    {
        var r = await server.Client.SendAsync(server.Request(HttpMethod.Post, "/v1/completions", SecuredServer.InferenceKey, Completion));
        var body = JsonNode.Parse(await r.Content.ReadAsStringAsync())!;
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        Assert.Equal(2, (int)body["usage"]!["completion_tokens"]!);
    }

    [Fact]
    public async Task Swagger_Document_DeclaresBearerScheme()
    {
        var doc = JsonNode.Parse(await server.Client.GetStringAsync("/swagger/v1/swagger.json"))!;
        var scheme = doc["components"]!["securitySchemes"]!["ApiKey"]!;
        Assert.Equal("http", (string?)scheme["type"]);
        Assert.Equal("bearer", (string?)scheme["scheme"]);
        Assert.Equal("inference", (string?)doc["paths"]!["/v1/completions"]!["post"]!["security"]![0]!["ApiKey"]![0]);
        Assert.Equal("admin", (string?)doc["paths"]!["/quantize"]!["post"]!["security"]![0]!["ApiKey"]![0]);
        Assert.Null(doc["paths"]!["/health/live"]!["get"]!["security"]);
    }

    internal static void AssertShape(string path, HttpResponseMessage r, string text, int status, string code)
    {
        Assert.Equal(status, (int)r.StatusCode);
        var body = JsonNode.Parse(text)!;
        if (path.StartsWith("/v1", StringComparison.Ordinal))
        {
            Json.AssertError(r, body, status, "invalid_request_error", code: code);
            return;
        }
        Assert.Equal("application/problem+json", r.Content.Headers.ContentType?.MediaType);
        Assert.Equal(status, (int)body["status"]!);
        Assert.False(string.IsNullOrWhiteSpace((string?)body["title"]));
        Assert.False(string.IsNullOrWhiteSpace((string?)body["detail"]));
    }
}
