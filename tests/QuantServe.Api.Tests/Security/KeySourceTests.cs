using System.Net;
using System.Net.Http.Headers;
using QuantServe.Api.Tests.TestSupport;

namespace QuantServe.Api.Tests.Security;

public sealed class KeySourceTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "quantserve-keys-" + Guid.NewGuid().ToString("N"));

    public KeySourceTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static async Task<HttpStatusCode> StatusAsync(HttpClient client, string path, string key)
    {
        var r = new HttpRequestMessage(HttpMethod.Get, path);
        r.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return (await client.SendAsync(r)).StatusCode;
    }

    private Dictionary<string, string?> Open(Dictionary<string, string?> extra)
    {
        var s = new Dictionary<string, string?>
        {
            ["QuantServe:Auth:Enabled"] = "true",
            ["QuantServe:DataDirectory"] = Path.Combine(_dir, "data"),
            ["QuantServe:Jobs:Concurrency"] = "0",
        };
        foreach (var (k, v) in extra) s[k] = v;
        return s;
    }

    [Fact]
    public async Task KeyFile_PlainAndHashedLines_AcceptedWithTheirScopes()
    {
        string file = Path.Combine(_dir, "keys.txt");
        File.WriteAllLines(file,
        [
            "# name:scopes:secret",
            "",
            "svc:inference:sk-file-inference-0123456789",
            $"ops:admin,inference:sha256:{SecuredServer.Sha256("sk-file-admin-0123456789ab")}",
        ]);
        await using var factory = new QuantServeFactory(Open(new() { ["QuantServe:Auth:KeyFile"] = file }));
        using var client = factory.CreateClient();
        Assert.Equal(HttpStatusCode.OK, await StatusAsync(client, "/v1/models", "sk-file-inference-0123456789"));
        Assert.Equal(HttpStatusCode.Forbidden, await StatusAsync(client, "/quantize", "sk-file-inference-0123456789"));
        Assert.Equal(HttpStatusCode.OK, await StatusAsync(client, "/quantize", "sk-file-admin-0123456789ab"));
        Assert.Equal(HttpStatusCode.OK, await StatusAsync(client, "/v1/models", "sk-file-admin-0123456789ab"));
        Assert.Equal(HttpStatusCode.Unauthorized, await StatusAsync(client, "/v1/models", SecuredServer.Sha256("sk-file-admin-0123456789ab")));
    }

    [Fact]
    public async Task EnvironmentVariable_Entries_Accepted()
    {
        // A variable of this test's own, so parallel tests never see its keys.
        string variable = "QUANTSERVE_TEST_KEYS_" + Guid.NewGuid().ToString("N");
        Environment.SetEnvironmentVariable(variable, "a:inference:sk-env-inference-0123456789; b:admin:sk-env-admin-0123456789ab");
        try
        {
            await using var factory = new QuantServeFactory(Open(new() { ["QuantServe:Auth:KeysEnvironmentVariable"] = variable }));
            using var client = factory.CreateClient();
            Assert.Equal(HttpStatusCode.OK, await StatusAsync(client, "/v1/models", "sk-env-inference-0123456789"));
            Assert.Equal(HttpStatusCode.Forbidden, await StatusAsync(client, "/v1/models", "sk-env-admin-0123456789ab"));
            Assert.Equal(HttpStatusCode.OK, await StatusAsync(client, "/quantize", "sk-env-admin-0123456789ab"));
        }
        finally { Environment.SetEnvironmentVariable(variable, null); }
    }

    [Theory]
    [InlineData("", "none is configured")]
    [InlineData("x:inference:short", "at least 16 characters")]
    [InlineData("x:reader:sk-0123456789abcdef0", "unknown scope 'reader'")]
    [InlineData("x::sk-0123456789abcdef0", "no scopes")]
    [InlineData("x:admin:sha256:abcd", "64 hex digits")]
    [InlineData("x:admin:sk-0123456789abcdef0;x:inference:sk-0123456789abcdef1", "must be unique")]
    [InlineData("just-a-key-0123456789abcdef", "expected name:scopes:secret")]
    public void Startup_BadKeyConfiguration_FailsNamingTheProblem(string entries, string expected)
    {
        string variable = "QUANTSERVE_TEST_KEYS_" + Guid.NewGuid().ToString("N");
        Environment.SetEnvironmentVariable(variable, entries.Length == 0 ? null : entries);
        try
        {
            using var factory = new QuantServeFactory(Open(new() { ["QuantServe:Auth:KeysEnvironmentVariable"] = variable }));
            var e = Assert.ThrowsAny<InvalidOperationException>(() => factory.CreateClient());
            Assert.Contains(expected, e.Message);
            Assert.DoesNotContain("0123456789abcdef", e.Message);
        }
        finally { Environment.SetEnvironmentVariable(variable, null); }
    }

    [Fact]
    public async Task Server_Disabled_OpenToRequestsWithoutKeys()
    {
        await using var factory = new QuantServeFactory(new() { ["QuantServe:DataDirectory"] = Path.Combine(_dir, "data") });
        using var client = factory.CreateClient();
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/v1/models")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/quantize")).StatusCode);
    }
}
