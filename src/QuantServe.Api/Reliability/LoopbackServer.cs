using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using QuantServe.Api.Hosting;

namespace QuantServe.Api.Reliability;

/// <summary>
/// The full server (the same services and pipeline as <c>quantserve serve</c>) on Kestrel at 127.0.0.1 with a port the
/// OS picks, over a temporary data directory that is deleted on dispose. Used by <c>quantserve load-test</c> when no
/// --url is given, so the load goes through real sockets, HTTP parsing and SSE framing.
/// </summary>
public sealed class LoopbackServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly string _data;

    private LoopbackServer(WebApplication app, string data, Uri address)
    {
        _app = app;
        _data = data;
        Address = address;
    }

    /// <summary>Base address, e.g. http://127.0.0.1:40123/.</summary>
    public Uri Address { get; }

    /// <summary>Starts a server serving <paramref name="modelPath"/> as its default model; <paramref name="settings"/>
    /// override configuration keys (e.g. QuantServe:MaxBatch). Request logging is lowered to warnings and the per-caller
    /// limits (QuantServe:Limits) are off, since all load comes from one address.</summary>
    public static async Task<LoopbackServer> StartAsync(string modelPath, IReadOnlyDictionary<string, string?>? settings, CancellationToken cancellation)
    {
        string data = Path.Combine(Path.GetTempPath(), "quantserve-load-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(data);
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory, Args = [] });
        var config = new Dictionary<string, string?>
        {
            ["QuantServe:DefaultModel"] = modelPath,
            ["QuantServe:DataDirectory"] = data,
            ["QuantServe:ModelsDirectory"] = "",
            ["QuantServe:Jobs:Concurrency"] = "0",
            // Every client comes from 127.0.0.1: per-caller rate and concurrency limits would measure the limiter, not the server.
            ["QuantServe:Limits:RequestsPerWindow"] = "0",
            ["QuantServe:Limits:ConcurrentRequests"] = "0",
            ["Serilog:MinimumLevel:Default"] = "Warning",
            ["Serilog:MinimumLevel:Override:Microsoft.Hosting.Lifetime"] = "Warning",
        };
        foreach (var (k, v) in settings ?? new Dictionary<string, string?>()) config[k] = v;
        builder.Configuration.AddInMemoryCollection(config);
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.AddQuantServe();
        var app = builder.Build();
        app.UseQuantServe();
        try
        {
            await app.StartAsync(cancellation);
            string url = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            return new LoopbackServer(app, data, new Uri(url.EndsWith('/') ? url : url + "/"));
        }
        catch
        {
            await app.DisposeAsync();
            TryDelete(data);
            throw;
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        TryDelete(_data);
    }

    private static void TryDelete(string dir)
    {
        try { Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
