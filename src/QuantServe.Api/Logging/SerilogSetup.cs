using Serilog;
using Serilog.Extensions.Logging;
using Serilog.Settings.Configuration;

namespace QuantServe.Api.Logging;

/// <summary>Builds the Serilog logger from the <c>Serilog</c> configuration section and plugs it into Microsoft.Extensions.Logging.</summary>
public static class SerilogSetup
{
    /// <summary>Replaces the default logging providers with Serilog. The logger is built from the host's final
    /// configuration when the container first asks for it, so every configuration source (command line, environment,
    /// test overrides) applies, and the container disposes (flushes) it at shutdown.</summary>
    public static void UseQuantServeSerilog(this ILoggingBuilder logging)
    {
        logging.ClearProviders();
        logging.Services.AddSingleton<ILoggerProvider>(sp => new SerilogLoggerProvider(Create(sp.GetRequiredService<IConfiguration>()), dispose: true));
    }

    /// <summary>The logger described by <paramref name="configuration"/> (Information to the console when it says nothing).</summary>
    public static Serilog.Core.Logger Create(IConfiguration configuration)
    {
        // Naming the sink assemblies explicitly keeps configuration working where dependency scanning cannot see them
        // (single-file publish, test hosts).
        var readerOptions = new ConfigurationReaderOptions(
            typeof(ConsoleLoggerConfigurationExtensions).Assembly,
            typeof(FileLoggerConfigurationExtensions).Assembly);
        var config = new LoggerConfiguration()
            .MinimumLevel.Information()
            .Enrich.FromLogContext();
        if (!configuration.GetSection("Serilog:WriteTo").Exists()) config.WriteTo.Console();
        return config.ReadFrom.Configuration(configuration, readerOptions).CreateLogger();
    }
}
