using System.Net.Http.Headers;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using QuantServe.Api.Tests.TestSupport;

namespace QuantServe.Api.Tests.Security;

public sealed class KeyLoggingTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "quantserve-keylog-" + Guid.NewGuid().ToString("N"));

    public KeyLoggingTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>The server with Serilog also writing to a file: what an operator's log would hold. The sink goes in as
    /// application configuration, which Serilog reads when the host builds its logger.</summary>
    private sealed class FileLogFactory(string log, Dictionary<string, string?> settings) : QuantServeFactory(settings)
    {
        protected override void ConfigureWebHost(IWebHostBuilder builder)
        {
            base.ConfigureWebHost(builder);
            builder.ConfigureAppConfiguration(c => c.AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["Serilog:WriteTo:1:Name"] = "File",
                ["Serilog:WriteTo:1:Args:path"] = log,
                ["Logging:LogLevel:QuantServe"] = "Information",
            }));
        }
    }

    [Fact]
    public async Task Requests_WithGoodAndBadKeys_KeysNeverInSerilogOutput()
    {
        string log = Path.Combine(_dir, "server.log");
        const string wrong = "sk-wrong-key-never-logged-0123";
        var settings = SecuredServer.Settings(new() { ["QuantServe:DataDirectory"] = Path.Combine(_dir, "data") });
        await using (var factory = new FileLogFactory(log, settings))
        {
            using var client = factory.CreateClient();
            await factory.WaitReadyAsync();
            foreach (var (key, path) in new[] { (SecuredServer.InferenceKey, "/v1/models"), (SecuredServer.AdminKey, "/v1/models"), (wrong, "/quantize"),
                         (SecuredServer.BothKey, "/quantize"), (SecuredServer.InferenceKey, "/no-such-route") })
            {
                var r = new HttpRequestMessage(HttpMethod.Get, path);
                r.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
                await client.SendAsync(r);
            }
        }
        string text = await File.ReadAllTextAsync(log);
        Assert.Contains("API keys required: 3 keys accepted", text);
        Assert.Contains("HTTP GET /v1/models", text); // the request lines were written: the capture is live
        Assert.Contains("caller=reader", text);       // callers are named by their key's name
        foreach (var secret in new[] { SecuredServer.InferenceKey, SecuredServer.AdminKey, SecuredServer.BothKey, wrong })
            Assert.DoesNotContain(secret, text);
    }

    [Fact]
    public async Task Startup_Open_SaysSo()
    {
        string log = Path.Combine(_dir, "open.log");
        await using (var factory = new FileLogFactory(log, new() { ["QuantServe:DataDirectory"] = Path.Combine(_dir, "data") }))
        {
            using var client = factory.CreateClient();
            await factory.WaitReadyAsync();
        }
        Assert.Contains("API keys disabled: the server is open", await File.ReadAllTextAsync(log));
    }
}
