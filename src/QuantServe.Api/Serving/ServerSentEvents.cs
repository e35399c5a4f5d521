using System.Text.Json;
using QuantServe.Api.OpenAi;

namespace QuantServe.Api.Serving;

/// <summary>Writes an OpenAI-style server-sent event stream: <c>data: {json}</c> events ending with <c>data: [DONE]</c>.</summary>
public static class ServerSentEvents
{
    /// <summary>Sets the event-stream headers (before the first write).</summary>
    public static void Begin(HttpResponse response)
    {
        response.StatusCode = 200;
        response.ContentType = "text/event-stream; charset=utf-8";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
    }

    /// <summary>Writes one event and flushes it to the client.</summary>
    public static async Task WriteAsync<T>(HttpResponse response, T payload, CancellationToken cancellation)
    {
        var json = JsonSerializer.SerializeToUtf8Bytes(payload, OpenAiJson.Options);
        await response.Body.WriteAsync("data: "u8.ToArray(), cancellation);
        await response.Body.WriteAsync(json, cancellation);
        await response.Body.WriteAsync("\n\n"u8.ToArray(), cancellation);
        await response.Body.FlushAsync(cancellation);
    }

    /// <summary>Writes the terminating <c>data: [DONE]</c>.</summary>
    public static async Task DoneAsync(HttpResponse response, CancellationToken cancellation)
    {
        await response.Body.WriteAsync("data: [DONE]\n\n"u8.ToArray(), cancellation);
        await response.Body.FlushAsync(cancellation);
    }

    /// <summary>Merges several sequences' events into one stream tagged with the sequence index, in arrival order.</summary>
    public static async IAsyncEnumerable<(int Index, GenerationEvent Event)> MergeAsync(
        IReadOnlyList<System.Threading.Channels.ChannelReader<GenerationEvent>> readers,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellation)
    {
        var merged = System.Threading.Channels.Channel.CreateUnbounded<(int, GenerationEvent)>();
        var pumps = readers.Select(async (r, i) =>
        {
            await foreach (var e in r.ReadAllAsync(cancellation)) await merged.Writer.WriteAsync((i, e), cancellation);
        }).ToArray();
        _ = Task.WhenAll(pumps).ContinueWith(t => merged.Writer.TryComplete(t.Exception?.InnerException), TaskScheduler.Default);
        await foreach (var item in merged.Reader.ReadAllAsync(cancellation)) yield return item;
    }
}
