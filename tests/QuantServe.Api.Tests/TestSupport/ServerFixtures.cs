using System.Net;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;

namespace QuantServe.Api.Tests.TestSupport;

/// <summary>One in-process server (TestServer) on the embedded model, shared by a test class.</summary>
public sealed class InProcessServer : IAsyncLifetime
{
    public QuantServeFactory Factory { get; } = new();

    public HttpClient Client { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Client = Factory.CreateClient();
        await Factory.WaitReadyAsync();
    }

    public async Task DisposeAsync()
    {
        Client.Dispose();
        await Factory.DisposeAsync();
    }
}

/// <summary>The server on real Kestrel at 127.0.0.1 with a random port, for clients that need a socket (the OpenAI SDK).</summary>
public sealed class KestrelServer : IAsyncLifetime
{
    public QuantServeFactory Factory { get; } = new(new() { ["QuantServe:MaxBatch"] = "16", ["QuantServe:MaxQueue"] = "64" });

    public Uri BaseAddress { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Factory.UseKestrel(o => o.Listen(IPAddress.Loopback, 0));
        Factory.StartServer();
        var addresses = Factory.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses;
        BaseAddress = new Uri(addresses.First());
        await Factory.WaitReadyAsync();
    }

    public async Task DisposeAsync() => await Factory.DisposeAsync();
}
