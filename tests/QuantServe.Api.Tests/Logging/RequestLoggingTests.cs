using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using QuantServe.Api.Logging;
using QuantServe.Api.Tests.TestSupport;

namespace QuantServe.Api.Tests.Logging;

public sealed class RequestLoggingTests
{
    private sealed record Entry(string Category, LogLevel Level, string Message, IReadOnlyDictionary<string, object?> State);

    private sealed class Capture : ILoggerProvider
    {
        public ConcurrentQueue<Entry> Entries { get; } = new();

        public ILogger CreateLogger(string categoryName) => new Logger(categoryName, this);

        public void Dispose() { }

        private sealed class Logger(string category, Capture owner) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                var values = state as IEnumerable<KeyValuePair<string, object?>> ?? [];
                owner.Entries.Enqueue(new Entry(category, logLevel, formatter(state, exception), values.ToDictionary(kv => kv.Key, kv => kv.Value)));
            }
        }
    }

    [Fact]
    public async Task Completion_Request_LogsOneStructuredLineWithoutPromptText()
    {
        var capture = new Capture();
        await using var factory = new QuantServeFactory(
            new() { ["Logging:LogLevel:QuantServe"] = "Information" },
            services => services.AddSingleton<ILoggerProvider>(capture));
        using var client = factory.CreateClient();
        await factory.WaitReadyAsync();
        const string secret = "Zebra-prompt-that-must-not-be-logged";
        var (r, _) = await Json.PostAsync(client, "/v1/completions", new { model = "stories260K", prompt = secret, max_tokens = 3, temperature = 0 });
        r.EnsureSuccessStatusCode();

        var lines = capture.Entries.Where(e => e.Category == typeof(RequestLoggingMiddleware).FullName && (string?)e.State["Path"] == "/v1/completions").ToList();
        var line = Assert.Single(lines);
        Assert.Equal(LogLevel.Information, line.Level);
        Assert.Equal("POST", line.State["Method"]);
        Assert.Equal(200, line.State["Status"]);
        Assert.Equal("stories260K", line.State["Model"]);
        Assert.Equal(3, line.State["CompletionTokens"]);
        Assert.True((int)line.State["PromptTokens"]! > 1);
        Assert.True((double)line.State["ElapsedMs"]! > 0);
        Assert.DoesNotContain(capture.Entries, e => e.Level >= LogLevel.Information && e.Message.Contains(secret, StringComparison.Ordinal));
    }
}
