using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using QuantServe.Api.Registry;

namespace QuantServe.Api.Tests.TestSupport;

/// <summary>The real server (Program.cs) in-process on the embedded stories260K, optionally with extra configuration.</summary>
public class QuantServeFactory : WebApplicationFactory<Program>
{
    private readonly Dictionary<string, string?> _settings;
    private readonly Action<IServiceCollection>? _services;

    /// <summary>Creates a factory; <paramref name="settings"/> override appsettings (e.g. "QuantServe:MaxQueue") and
    /// <paramref name="services"/> adds test services (e.g. a log capture).</summary>
    public QuantServeFactory(Dictionary<string, string?>? settings = null, Action<IServiceCollection>? services = null)
    {
        _settings = settings ?? new();
        _services = services;
    }

    /// <inheritdoc />
    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment("Production");
        // Request lines would flood the test log; warnings and errors still show.
        builder.UseSetting("Logging:LogLevel:QuantServe", "Warning");
        foreach (var (k, v) in _settings) builder.UseSetting(k, v);
        if (_services is not null) builder.ConfigureServices(_services);
    }

    /// <summary>Waits until the default model has loaded (or failed).</summary>
    public async Task WaitReadyAsync()
    {
        var registry = Services.GetRequiredService<ModelRegistry>();
        for (int i = 0; i < 3000 && !registry.IsReady && registry.DefaultModelError is null; i++) await Task.Delay(20);
        Assert.True(registry.IsReady, registry.DefaultModelError ?? "default model did not load in time");
    }
}
