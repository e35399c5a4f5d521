using System.CommandLine;

namespace QuantServe.Api.Cli;

/// <summary><c>quantserve healthcheck --url URL</c>: exit 0 when the URL answers 2xx, else 1 — a container HEALTHCHECK
/// that needs no curl in the runtime image.</summary>
public static class HealthcheckCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var url = new Option<string>("--url") { Description = "Probe URL", DefaultValueFactory = _ => "http://127.0.0.1:8080/health/ready" };
        var timeout = new Option<double>("--timeout") { Description = "Seconds to wait for an answer", DefaultValueFactory = _ => 5 };
        var command = new Command("healthcheck", "Probe a running server (exit 0 = healthy).") { url, timeout };
        command.SetAction(async (parse, cancellation) =>
        {
            var output = parse.InvocationConfiguration.Output;
            if (!Uri.TryCreate(parse.GetValue(url), UriKind.Absolute, out var target))
                throw new ArgumentException($"--url '{parse.GetValue(url)}' is not an absolute URL");
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(parse.GetValue(timeout)) };
            try
            {
                using var response = await http.GetAsync(target, cancellation);
                await output.WriteLineAsync($"{(int)response.StatusCode} {response.ReasonPhrase}");
                return response.IsSuccessStatusCode ? 0 : 1;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                await output.WriteLineAsync($"unreachable: {e.Message}");
                return 1;
            }
        });
        return command;
    }
}
