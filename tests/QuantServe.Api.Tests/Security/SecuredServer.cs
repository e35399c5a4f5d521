using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using QuantServe.Api.Tests.TestSupport;

namespace QuantServe.Api.Tests.Security;

/// <summary>The real server with API keys required: one key per scope combination, the admin key given only as its hash.</summary>
public sealed class SecuredServer : IAsyncLifetime
{
    public const string InferenceKey = "sk-inference-0123456789abcdef";
    public const string AdminKey = "sk-admin-0123456789abcdef0123";
    public const string BothKey = "sk-both-0123456789abcdef012345";

    public static string Sha256(string key) => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(key))).ToLowerInvariant();

    public static Dictionary<string, string?> Settings(Dictionary<string, string?>? extra = null)
    {
        var s = new Dictionary<string, string?>
        {
            ["QuantServe:Auth:Enabled"] = "true",
            ["QuantServe:Auth:Keys:0:Name"] = "reader",
            ["QuantServe:Auth:Keys:0:Key"] = InferenceKey,
            ["QuantServe:Auth:Keys:0:Scopes:0"] = "inference",
            ["QuantServe:Auth:Keys:1:Name"] = "operator",
            ["QuantServe:Auth:Keys:1:KeyHash"] = Sha256(AdminKey),
            ["QuantServe:Auth:Keys:1:Scopes:0"] = "admin",
            ["QuantServe:Auth:Keys:2:Name"] = "owner",
            ["QuantServe:Auth:Keys:2:Key"] = BothKey,
            ["QuantServe:Auth:Keys:2:Scopes:0"] = "inference",
            ["QuantServe:Auth:Keys:2:Scopes:1"] = "admin",
            ["QuantServe:DataDirectory"] = Path.Combine(Path.GetTempPath(), "quantserve-auth-" + Guid.NewGuid().ToString("N")),
            ["QuantServe:Jobs:Concurrency"] = "0",
        };
        foreach (var (k, v) in extra ?? new()) s[k] = v;
        return s;
    }

    private readonly Dictionary<string, string?> _settings = Settings();

    public SecuredServer() => Factory = new QuantServeFactory(_settings);

    public QuantServeFactory Factory { get; }

    public HttpClient Client { get; private set; } = null!;

    public HttpRequestMessage Request(HttpMethod method, string path, string? key, string? json = null)
    {
        var r = new HttpRequestMessage(method, path);
        if (key is not null) r.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        if (json is not null) r.Content = new StringContent(json, Encoding.UTF8, "application/json");
        return r;
    }

    public async Task InitializeAsync()
    {
        Client = Factory.CreateClient();
        await Factory.WaitReadyAsync();
    }

    public async Task DisposeAsync()
    {
        Client.Dispose();
        string data = _settings["QuantServe:DataDirectory"]!;
        await Factory.DisposeAsync();
        try { Directory.Delete(data, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
