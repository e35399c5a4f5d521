using System.Diagnostics;
using System.Runtime.ExceptionServices;

namespace QuantServe.Engine.Kernels.Cpu;

/// <summary>
/// A persistent pool of threads for the kernels' parallel loops. The calling thread takes part as worker 0, so a pool of
/// N threads starts N−1 background threads. Between dispatches the workers spin for a short while (decoding issues
/// dozens of small matmuls per token, microseconds apart, and waking a blocked thread costs more than the work), then
/// block so an idle server burns no CPU. A dispatch allocates nothing.
/// <para>Items are claimed from a single 64-bit ticket (dispatch number in the high half, next item in the low half) and a
/// dispatch ends when every item has completed — not when every worker has checked in. A worker that the OS has not
/// scheduled (the machine may be oversubscribed) therefore never delays a dispatch: the threads that are running take
/// all the items. A late worker's claim fails because the ticket's dispatch number has moved on.</para>
/// </summary>
public sealed class WorkerPool : IDisposable
{
    private static readonly long SpinTicks = Stopwatch.Frequency / 5000; // 200 µs of spinning before blocking
    private const long Closed = 0xFFFF_FFFFL;                            // low half while a dispatch is being set up

    [ThreadStatic] private static WorkerPool? _inside;

    private readonly Thread[] _threads;
    private readonly object _sleep = new();
    private readonly object _dispatch = new();
    private IParallelWork? _work;
    private int _count;
    private long _ticket;        // (dispatch << 32) | next item
    private int _completed;
    private long _dispatchNumber;
    private int _sleepers;
    private volatile bool _disposed;
    private Exception? _error;

    /// <summary>Starts a pool of <paramref name="threads"/> threads (default <see cref="Environment.ProcessorCount"/>), the caller included.</summary>
    public WorkerPool(int threads = 0)
    {
        if (threads < 0) throw new ArgumentOutOfRangeException(nameof(threads), threads, "thread count must be positive (0 = all cores)");
        Threads = threads == 0 ? Environment.ProcessorCount : threads;
        _threads = new Thread[Threads - 1];
        for (int i = 0; i < _threads.Length; i++)
        {
            int worker = i + 1;
            _threads[i] = new Thread(() => Loop(worker)) { IsBackground = true, Name = $"QuantServe worker {worker}" };
            _threads[i].Start();
        }
    }

    /// <summary>A process-wide pool using every core, created on first use.</summary>
    public static WorkerPool Shared => SharedPool.Value;

    private static readonly Lazy<WorkerPool> SharedPool = new(() => new WorkerPool());

    /// <summary>Number of threads that execute work, the calling thread included.</summary>
    public int Threads { get; }

    /// <summary>
    /// Runs <c>work.Execute(i, worker)</c> for every i in [0, <paramref name="count"/>) across the pool and returns when all are done.
    /// Concurrent callers are serialised; a call from inside a work item runs inline. The first exception thrown by an
    /// item is rethrown here after the other items finish.
    /// </summary>
    public void For(IParallelWork work, int count)
    {
        if (count <= 0) return;
        if (count == 1 || Threads == 1 || _inside != null)
        {
            for (int i = 0; i < count; i++) work.Execute(i, 0);
            return;
        }
        ObjectDisposedException.ThrowIf(_disposed, this);
        lock (_dispatch)
        {
            long number = _dispatchNumber + 1;
            // Close the ticket before changing the operands, so a late worker cannot pair old claims with new work.
            Volatile.Write(ref _ticket, (number << 32) | Closed);
            _work = work;
            _count = count;
            _completed = 0;
            _error = null;
            Interlocked.Exchange(ref _ticket, number << 32); // full fence: operands are visible before the ticket opens
            Interlocked.Exchange(ref _dispatchNumber, number); // wakes spinning workers; full fence before reading _sleepers
            if (Volatile.Read(ref _sleepers) > 0)
                lock (_sleep) Monitor.PulseAll(_sleep);
            _inside = this;
            try { Drain(0); }
            finally { _inside = null; }
            var spin = new SpinWait();
            while (Volatile.Read(ref _completed) != count) spin.SpinOnce(-1);
            _work = null;
            if (_error is { } e) ExceptionDispatchInfo.Capture(e).Throw();
        }
    }

    /// <summary>Claims and runs items of the open dispatch until none is left.</summary>
    private void Drain(int worker)
    {
        while (true)
        {
            long ticket = Volatile.Read(ref _ticket);
            long index = ticket & Closed;
            if (index == Closed) return;
            var work = _work;
            int count = _count;
            if (work == null || index >= count) return;
            // The claim succeeds only if the ticket is unchanged, i.e. work and count above belong to this dispatch.
            if (Interlocked.CompareExchange(ref _ticket, ticket + 1, ticket) != ticket) continue;
            try { work.Execute((int)index, worker); }
            catch (Exception e) { Interlocked.CompareExchange(ref _error, e, null); }
            Interlocked.Increment(ref _completed);
        }
    }

    private void Loop(int worker)
    {
        _inside = this;
        long seen = 0;
        while (true)
        {
            long number;
            long spinStart = Stopwatch.GetTimestamp();
            int spins = 0;
            while ((number = Volatile.Read(ref _dispatchNumber)) == seen && !_disposed)
            {
                if (++spins < 64 || Stopwatch.GetTimestamp() - spinStart < SpinTicks)
                {
                    Thread.SpinWait(8);
                    continue;
                }
                lock (_sleep)
                {
                    Interlocked.Increment(ref _sleepers); // full fence before re-reading the dispatch number
                    while (Volatile.Read(ref _dispatchNumber) == seen && !_disposed) Monitor.Wait(_sleep);
                    Interlocked.Decrement(ref _sleepers);
                }
                spins = 0;
                spinStart = Stopwatch.GetTimestamp();
            }
            if (_disposed) return;
            seen = number;
            Drain(worker);
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_disposed || (SharedPool.IsValueCreated && ReferenceEquals(this, SharedPool.Value))) return;
        _disposed = true;
        lock (_sleep) Monitor.PulseAll(_sleep);
        foreach (var t in _threads) t.Join();
    }
}
