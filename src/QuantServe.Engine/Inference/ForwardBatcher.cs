using System.Diagnostics;
using System.Runtime.ExceptionServices;

namespace QuantServe.Engine.Inference;

/// <summary>
/// Continuous batching without a scheduler thread: every generation that needs a forward pass queues its chunk and
/// then takes the model; whoever gets the model runs ONE forward over everything queued at that moment (new prompts
/// and the next token of every other running sequence) and hands each its logits. Those whose step was run by
/// another thread find it done and return at once. On a memory-bound CPU a decode step for several sequences costs
/// little more than for one, so concurrent requests share the weight reads.
/// <para>A sequence between steps (sampling, or its consumer writing the last token out) would miss the pass and
/// fragment the batches, so the thread that takes the model first waits briefly — at most a quarter of the previous
/// pass and never more than 100 µs — for every active sequence to queue.</para>
/// </summary>
internal sealed class ForwardBatcher
{
    internal sealed class Step
    {
        public KvCache Cache = null!;
        public ReadOnlyMemory<int> Tokens;
        public int Start;
        public float[] Logits = null!;
        public bool Done;
        public Exception? Error;
    }

    private readonly LlamaModel _model;
    private readonly object _queueLock = new();
    private readonly List<Step> _queue = new();
    private readonly List<Step> _running = new();
    private SequenceChunk[] _chunks = new SequenceChunk[8];
    private float[] _logits = [];
    private static readonly long MaxGatherTicks = Stopwatch.Frequency / 10_000; // 100 µs
    private long _passes, _sequences;
    private int _widest;
    private int _active;
    private int _queuedCount;
    private long _lastPassTicks;

    public ForwardBatcher(LlamaModel model) => _model = model;

    /// <summary>The lock held while the model runs (shared with other users of the model).</summary>
    internal object Gate { get; } = new();

    /// <summary>Steps queued and not yet taken by a forward pass.</summary>
    internal int Queued => Volatile.Read(ref _queuedCount);

    /// <summary>A generation starts: its steps are worth waiting for.</summary>
    public void Enter() => Interlocked.Increment(ref _active);

    /// <summary>A generation ends.</summary>
    public void Leave() => Interlocked.Decrement(ref _active);

    /// <summary>Most sequences one forward pass has served.</summary>
    public int WidestBatch => Volatile.Read(ref _widest);

    /// <summary>Forward passes run, and sequence steps served by them (their ratio is the mean batch width).</summary>
    public (long Passes, long Sequences) Counts { get { lock (Gate) return (_passes, _sequences); } }

    /// <summary>Runs <paramref name="step"/>, batched with whatever other steps are waiting; returns when its logits are filled.</summary>
    public void Run(Step step)
    {
        step.Done = false;
        step.Error = null;
        lock (_queueLock)
        {
            _queue.Add(step);
            _queuedCount = _queue.Count;
        }
        lock (Gate)
        {
            if (!step.Done) RunQueued();
        }
        if (step.Error is { } e) ExceptionDispatchInfo.Throw(e);
    }

    private void RunQueued()
    {
        long gather = Math.Min(MaxGatherTicks, _lastPassTicks / 4), start = Stopwatch.GetTimestamp();
        while (Volatile.Read(ref _queuedCount) < Volatile.Read(ref _active) && Stopwatch.GetTimestamp() - start < gather)
            Thread.SpinWait(16);
        lock (_queueLock)
        {
            _running.AddRange(_queue);
            _queue.Clear();
            _queuedCount = 0;
        }
        long passStart = Stopwatch.GetTimestamp();
        int n = _running.Count, vocab = _model.VocabSize;
        try
        {
            if (_chunks.Length < n) _chunks = new SequenceChunk[Math.Max(n, 2 * _chunks.Length)];
            if (_logits.Length < (long)n * vocab) _logits = new float[(long)n * vocab];
            for (int i = 0; i < n; i++) _chunks[i] = new SequenceChunk(_running[i].Cache, _running[i].Tokens, _running[i].Start);
            try
            {
                _model.Forward(_chunks.AsSpan(0, n), _logits);
                for (int i = 0; i < n; i++) _logits.AsSpan(i * vocab, vocab).CopyTo(_running[i].Logits);
            }
            catch when (n > 1)
            {
                // One bad step must not fail the others: run them one by one so only the culprit sees its error.
                for (int i = 0; i < n; i++)
                {
                    try { _model.Forward(_chunks.AsSpan(i, 1), _running[i].Logits); }
                    catch (Exception e) { _running[i].Error = e; }
                }
            }
            _passes++;
            _sequences += n;
            _lastPassTicks = Stopwatch.GetTimestamp() - passStart;
            if (n > _widest) Volatile.Write(ref _widest, n);
        }
        catch (Exception e)
        {
            foreach (var s in _running) s.Error ??= e;
        }
        finally
        {
            foreach (var s in _running) s.Done = true;
            _running.Clear();
            Array.Clear(_chunks, 0, n);
        }
    }
}
