using Serilog;
using Serilog.Settings.Configuration;

namespace QuantServe.Api.Logging;

/// <summary>Builds the Serilog logger from the <c>Serilog</c> configuration section and plugs it into Microsoft.Extensions.Logging.</summary>
public static class SerilogSetup
{
    /// <summary>Replaces the default logging providers with Serilog configured from <paramref name="configuration"/>.</summary>
    public static void UseQuantServeSerilog(this ILoggingBuilder logging, IConfiguration configuration)
    {
        // Naming the sink assemblies explicitly keeps configuration working where dependency scanning cannot see them
        // (single-file publish, test hosts).
        var readerOptions = new ConfigurationReaderOptions(
            typeof(ConsoleLoggerConfigurationExtensions).Assembly,
            typeof(FileLoggerConfigurationExtensions).Assembly);
        var logger = new LoggerConfiguration()
            .MinimumLevel.Information()
            .Enrich.FromLogContext()
            .ReadFrom.Configuration(configuration, readerOptions)
            .CreateLogger();
        logging.ClearProviders();
        logging.AddSerilog(logger, dispose: true);
    }
}
