using System.Collections.Concurrent;
using System.Threading.Channels;
using Microsoft.Extensions.Options;

namespace QuantServe.Api.Quantization;

/// <summary>The in-memory side of the queue: a bounded channel of job ids feeding the workers, and the cancellation
/// sources of running jobs. The SQLite store stays the source of truth.</summary>
public sealed class JobQueue
{
    private readonly Channel<string> _channel;
    private readonly ConcurrentDictionary<string, CancellationTokenSource> _running = new(StringComparer.Ordinal);
    private int _depth;

    /// <summary>Creates the channel with the configured capacity.</summary>
    public JobQueue(IOptions<JobsSettings> settings)
        => _channel = Channel.CreateBounded<string>(new BoundedChannelOptions(Math.Max(1, settings.Value.QueueCapacity))
        {
            FullMode = BoundedChannelFullMode.Wait,
        });

    /// <summary>Jobs waiting in the channel.</summary>
    public int Depth => Volatile.Read(ref _depth);

    /// <summary>Adds a job; false when the channel is full.</summary>
    public bool TryEnqueue(string id)
    {
        if (!_channel.Writer.TryWrite(id)) return false;
        Interlocked.Increment(ref _depth);
        return true;
    }

    /// <summary>Adds a job, waiting for room (used at startup, when the stored backlog may exceed the capacity).</summary>
    public async ValueTask EnqueueAsync(string id, CancellationToken cancellation)
    {
        await _channel.Writer.WriteAsync(id, cancellation);
        Interlocked.Increment(ref _depth);
    }

    /// <summary>Waits for the next job id.</summary>
    public async ValueTask<string> DequeueAsync(CancellationToken cancellation)
    {
        var id = await _channel.Reader.ReadAsync(cancellation);
        Interlocked.Decrement(ref _depth);
        return id;
    }

    /// <summary>Registers a running job's cancellation source.</summary>
    public void Running(string id, CancellationTokenSource cts) => _running[id] = cts;

    /// <summary>Forgets a finished job's source.</summary>
    public void Finished(string id) => _running.TryRemove(id, out _);

    /// <summary>Signals a running job to stop; false if it is not running here.</summary>
    public bool CancelRunning(string id)
    {
        if (!_running.TryGetValue(id, out var cts)) return false;
        try { cts.Cancel(); } catch (ObjectDisposedException) { return false; }
        return true;
    }
}
