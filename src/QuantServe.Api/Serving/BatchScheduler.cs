using System.Runtime.InteropServices;
using System.Threading.Channels;
using QuantServe.Api.OpenAi;
using QuantServe.Api.Telemetry;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Kernels.Cpu;
using QuantServe.Engine.Models;

namespace QuantServe.Api.Serving;

/// <summary>
/// Continuous batching for one model. Requests wait in a bounded queue; between decode steps waiting sequences join the
/// running batch (up to MaxBatch), each with its own KV cache. Every step is ONE forward over all running sequences:
/// new sequences contribute their whole prompt as a chunk, the others their last token, so the weights are read once
/// per step for the whole batch. Finished or cancelled sequences leave the batch immediately. The model runs in an
/// <see cref="IBatchEngine"/> (the CPU, or a device where greedy and top-k picks are sampled without reading logits back).
/// A sequence whose cache does not fit the engine's memory (or <see cref="SchedulerOptions.KvCacheBudgetBytes"/>) waits
/// while others run and free theirs, and is refused with a 503 when nothing runs.
/// </summary>
public sealed class BatchScheduler : IDisposable
{
    private readonly IBatchEngine _engine;
    private readonly LoadedModel _source;
    private readonly SchedulerOptions _options;
    private readonly QuantServeTelemetry _telemetry;
    private readonly ILogger _log;
    private readonly Lock _gate = new();
    private readonly Queue<Sequence> _waiting = new();
    private readonly List<Sequence> _running = [];
    private readonly List<IEngineCache> _freeCaches = [];
    private readonly SemaphoreSlim _wake = new(0);
    private readonly CancellationTokenSource _stop = new();
    private readonly Thread _thread;
    private readonly float[] _logits;
    private readonly int[] _tokens;
    private readonly int _capacity;
    private int _runningCount;
    private long _generatedTokens;
    private long _cacheBytes;
    private long _cacheBytesInUse;

    /// <summary>Starts the scheduler thread for <paramref name="model"/> on the CPU.</summary>
    public BatchScheduler(LoadedModel model, string modelId, SchedulerOptions options, QuantServeTelemetry telemetry, ILogger log, WorkerPool? workers = null)
        : this(model, new CpuBatchEngine(model, options.MaxBatchTokens, workers), modelId, options, telemetry, log)
    {
    }

    /// <summary>Starts the scheduler thread for <paramref name="model"/> running in <paramref name="engine"/> (owned: disposed with the scheduler).</summary>
    public BatchScheduler(LoadedModel model, IBatchEngine engine, string modelId, SchedulerOptions options, QuantServeTelemetry telemetry, ILogger log)
    {
        _source = model;
        _engine = engine;
        _options = options;
        _telemetry = telemetry;
        _log = log;
        ModelId = modelId;
        _capacity = Math.Min(options.MaxContext, model.Config.ContextLength);
        _logits = GC.AllocateUninitializedArray<float>(checked(options.MaxBatch * model.Config.VocabSize));
        _tokens = new int[options.MaxBatch];
        _thread = new Thread(Run) { IsBackground = true, Name = $"quantserve-batch-{modelId}" };
        _thread.Start();
    }

    /// <summary>Where the model runs (<see cref="IBatchEngine.Device"/>).</summary>
    public string Device => _engine.Device;

    /// <summary>Bytes the engine holds for the model on its device (0 on the CPU).</summary>
    public long ResidentBytes => _engine.ResidentBytes;

    /// <summary>Bytes of KV caches held now: running sequences' and idle ones kept for reuse.</summary>
    public long CacheBytes => Interlocked.Read(ref _cacheBytes);

    /// <summary>Bytes of KV caches of running sequences.</summary>
    public long CacheBytesInUse => Interlocked.Read(ref _cacheBytesInUse);

    /// <summary>Bytes one sequence's cache of <paramref name="positions"/> positions takes in this engine.</summary>
    public long CacheBytesFor(int positions) => _engine.CacheBytes(positions);

    /// <summary>The model's id.</summary>
    public string ModelId { get; }

    /// <summary>Positions per sequence (prompt + completion).</summary>
    public int Context => _capacity;

    /// <summary>Sequences in the running batch (read from another thread: a snapshot).</summary>
    public int Running => Volatile.Read(ref _runningCount);

    /// <summary>Tokens sampled since the scheduler started (all sequences).</summary>
    public long GeneratedTokens => Interlocked.Read(ref _generatedTokens);

    /// <summary>Sequences waiting for a batch slot.</summary>
    public int Waiting { get { lock (_gate) return _waiting.Count; } }

    /// <summary>Queues a sequence. Throws a 400 <see cref="OpenAiException"/> when it cannot fit the context and a 429 when the queue is full.</summary>
    public ChannelReader<GenerationEvent> Submit(GenerationRequest request)
    {
        int prompt = request.Prompt.Length;
        if (prompt == 0) throw OpenAiException.BadRequest("the prompt is empty", "prompt");
        foreach (int t in request.Prompt)
            if ((uint)t >= (uint)_source.Config.VocabSize)
                throw OpenAiException.BadRequest($"token id {t} is outside the vocabulary [0, {_source.Config.VocabSize})", "prompt");
        if (prompt + (request.MaxTokens is > 0 ? request.MaxTokens.Value : 1) > _capacity)
            throw OpenAiException.BadRequest(
                $"This model's maximum context length is {_capacity} tokens. However, you requested {prompt + (request.MaxTokens ?? 1)} tokens ({prompt} in the prompt, {request.MaxTokens ?? 1} for the completion). Please reduce the prompt or the completion length.",
                null, "context_length_exceeded");
        try
        {
            request.Sampling.Validate(_source.Config.VocabSize);
        }
        catch (ArgumentException e)
        {
            throw OpenAiException.BadRequest(e.Message);
        }

        var sequence = new Sequence(request, _source, _capacity);
        lock (_gate)
        {
            if (_stop.IsCancellationRequested) throw new ObjectDisposedException(nameof(BatchScheduler));
            if (_waiting.Count >= _options.MaxQueue) DropCancelledWaiting();
            if (_waiting.Count >= _options.MaxQueue)
                throw OpenAiException.Overloaded($"The server is overloaded: {_waiting.Count} requests are already waiting for model '{ModelId}'. Retry shortly.", _options.RetryAfterSeconds);
            _waiting.Enqueue(sequence);
        }
        _telemetry.Waiting(1);
        _wake.Release();
        return sequence.Events;
    }

    /// <summary>Checks, before queueing anything, that <paramref name="count"/> more sequences fit the queue.</summary>
    public void EnsureQueueRoom(int count)
    {
        // A request that could never fit is the client's error, not a transient overload.
        if (count > _options.MaxQueue + _options.MaxBatch)
            throw OpenAiException.BadRequest($"The request needs {count} sequences (prompts × n or best_of); this server queues at most {_options.MaxQueue + _options.MaxBatch}.", "n");
        lock (_gate)
        {
            if (_waiting.Count + count > _options.MaxQueue) DropCancelledWaiting();
            if (_waiting.Count + count > _options.MaxQueue)
                throw OpenAiException.Overloaded($"The server is overloaded: {_waiting.Count} requests are already waiting for model '{ModelId}'. Retry shortly.", _options.RetryAfterSeconds);
        }
    }

    /// <summary>Removes waiting sequences whose client went away, so they stop holding queue places (caller holds _gate).</summary>
    private void DropCancelledWaiting()
    {
        int before = _waiting.Count;
        for (int i = 0; i < before; i++)
        {
            var s = _waiting.Dequeue();
            if (s.Cancelled) s.Abandon();
            else _waiting.Enqueue(s);
        }
        if (_waiting.Count != before) _telemetry.Waiting(_waiting.Count - before);
    }

    private void Run()
    {
        var chunks = new List<EngineChunk>(_options.MaxBatch);
        var picks = new List<TokenPick>(_options.MaxBatch);
        var stepping = new List<Sequence>(_options.MaxBatch);
        while (!_stop.IsCancellationRequested)
        {
            Admit();
            if (_running.Count == 0)
            {
                try { _wake.Wait(_stop.Token); } catch (OperationCanceledException) { break; }
                continue;
            }
            try
            {
                Step(chunks, picks, stepping);
            }
            catch (Exception e)
            {
                _log.LogError(e, "Batch step failed for model {Model}; failing its {Count} running sequences", ModelId, _running.Count);
                foreach (var s in _running) s.Fail(e);
            }
            Retire();
        }
        lock (_gate)
        {
            foreach (var s in _waiting) s.Fail(new ObjectDisposedException(nameof(BatchScheduler), "the model was unloaded"));
            _waiting.Clear();
        }
        foreach (var s in _running) s.Fail(new ObjectDisposedException(nameof(BatchScheduler), "the model was unloaded"));
        _telemetry.Running(-_running.Count);
        foreach (var s in _running)
            if (s.Cache is { } cache) cache.Dispose();
        _running.Clear();
        foreach (var cache in _freeCaches) cache.Dispose();
        _freeCaches.Clear();
        Interlocked.Exchange(ref _cacheBytes, 0);
        Interlocked.Exchange(ref _cacheBytesInUse, 0);
    }

    private void Admit()
    {
        lock (_gate)
        {
            while (_running.Count < _options.MaxBatch && _waiting.Count > 0)
            {
                var s = _waiting.Peek();
                if (s.Cancelled)
                {
                    _waiting.Dequeue();
                    _telemetry.Waiting(-1);
                    s.Abandon();
                    continue;
                }
                IEngineCache cache;
                try
                {
                    cache = TakeCache(s.Request);
                }
                catch (EngineMemoryException e)
                {
                    // Running sequences will free their caches: the head of the queue waits for them.
                    if (_running.Count > 0) break;
                    _waiting.Dequeue();
                    _telemetry.Waiting(-1);
                    _log.LogWarning("Refusing a sequence of model {Model}: {Problem}", ModelId, e.Message);
                    s.Fail(OpenAiException.Unavailable(
                        $"Not enough memory on {_engine.Device} for this request's KV cache: {e.Message}. Retry later, or ask for fewer tokens.",
                        _options.RetryAfterSeconds));
                    continue;
                }
                catch (Exception e)
                {
                    // Any other failure to make a cache (a device error) fails this request, never the scheduler thread.
                    _waiting.Dequeue();
                    _telemetry.Waiting(-1);
                    _log.LogError(e, "Could not create a KV cache for a sequence of model {Model}", ModelId);
                    s.Fail(e);
                    continue;
                }
                _waiting.Dequeue();
                _telemetry.Waiting(-1);
                s.Cache = cache;
                cache.Clear();
                Interlocked.Add(ref _cacheBytesInUse, cache.Bytes);
                _running.Add(s);
                Volatile.Write(ref _runningCount, _running.Count);
                _telemetry.Running(1);
            }
        }
    }

    /// <summary>A cache big enough for the request: prompt + max_tokens positions (the whole context when the request
    /// sets no limit). Caches are F32 and preallocated, so sizing them by need keeps a batch of short requests on a
    /// long-context model from reserving MaxBatch full contexts. Idle caches are released first when the budget or the
    /// engine's memory is short.</summary>
    private IEngineCache TakeCache(GenerationRequest request)
    {
        long want = request.MaxTokens is { } m ? (long)request.Prompt.Length + Math.Max(m, 1) : _capacity;
        int needed = (int)Math.Min(_capacity, want);
        int best = -1;
        for (int i = 0; i < _freeCaches.Count; i++)
            if (_freeCaches[i].Capacity >= needed && (best < 0 || _freeCaches[i].Capacity < _freeCaches[best].Capacity)) best = i;
        if (best >= 0)
        {
            var cache = _freeCaches[best];
            _freeCaches.RemoveAt(best);
            return cache;
        }
        // Round up so similar requests can share caches later (not beyond the budget, which may allow the exact size).
        int capacity = Math.Min(_capacity, (needed + 255) / 256 * 256);
        long budget = _options.KvCacheBudgetBytes;
        if (budget > 0 && CacheBytes + _engine.CacheBytes(capacity) > budget) capacity = needed;
        long bytes = _engine.CacheBytes(capacity);
        while (budget > 0 && CacheBytes + bytes > budget && _freeCaches.Count > 0) DropFreeCache(0);
        if (budget > 0 && CacheBytes + bytes > budget)
            throw new EngineMemoryException($"{needed} positions need {bytes:N0} bytes of KV cache; {CacheBytes:N0} of the {budget:N0}-byte budget (QuantServe:KvCacheBudgetBytes) are held by running sequences");
        IEngineCache created;
        try
        {
            created = _engine.CreateCache(capacity);
        }
        catch (EngineMemoryException) when (_freeCaches.Count > 0)
        {
            while (_freeCaches.Count > 0) DropFreeCache(0);
            created = _engine.CreateCache(capacity);
        }
        Interlocked.Add(ref _cacheBytes, created.Bytes);
        return created;
    }

    private void DropFreeCache(int index)
    {
        var cache = _freeCaches[index];
        _freeCaches.RemoveAt(index);
        Interlocked.Add(ref _cacheBytes, -cache.Bytes);
        cache.Dispose();
    }

    private void ReturnCache(IEngineCache cache)
    {
        _freeCaches.Add(cache);
        // Keep at most MaxBatch idle caches, the largest ones (they fit every request).
        if (_freeCaches.Count > _options.MaxBatch)
        {
            int smallest = 0;
            for (int i = 1; i < _freeCaches.Count; i++)
                if (_freeCaches[i].Capacity < _freeCaches[smallest].Capacity) smallest = i;
            DropFreeCache(smallest);
        }
    }

    private void Step(List<EngineChunk> chunks, List<TokenPick> picks, List<Sequence> stepping)
    {
        chunks.Clear();
        picks.Clear();
        stepping.Clear();
        foreach (var s in _running)
        {
            if (s.Cancelled)
            {
                s.Abandon();
                continue;
            }
            if (!s.Prefilled && s.Request.ScorePrompt)
            {
                // Scoring needs logits at every prompt position, so this prompt runs on its own, piece by piece.
                ScorePrompt(s);
                s.Prefilled = true;
                if (s.Request.MaxTokens == 0) s.FinishWithoutTokens();
                continue;
            }
            if (!s.Prefilled)
            {
                chunks.Add(new EngineChunk(s.Cache!, s.Request.Prompt));
                s.Prefilled = true;
            }
            else chunks.Add(new EngineChunk(s.Cache!, new[] { s.LastToken }));
            picks.Add(_engine.SamplesOnEngine ? s.NextPick() : TokenPick.Logits);
            stepping.Add(s);
        }
        if (chunks.Count == 0) return;
        int vocab = _source.Config.VocabSize;
        _engine.Step(CollectionsMarshal.AsSpan(chunks), CollectionsMarshal.AsSpan(picks), _logits, _tokens);
        for (int i = 0; i < stepping.Count; i++)
        {
            if (stepping[i].Finished) continue;
            if (picks[i].Kind == PickKind.Logits) stepping[i].Step(_logits.AsSpan(i * vocab, vocab));
            else stepping[i].Accept(_tokens[i]);
        }
        Interlocked.Add(ref _generatedTokens, stepping.Count);
    }

    /// <summary>Runs the prompt with logits at every position, reporting log p(prompt[i] | prompt[..i]) for i ≥ 1, then
    /// samples the first completion token from the last position (when any is wanted).</summary>
    private void ScorePrompt(Sequence s)
    {
        var prompt = s.Request.Prompt;
        int vocab = _source.Config.VocabSize;
        int piece = _engine.MaxPiece;
        var buffer = new float[piece * vocab];
        var logprobs = new float[prompt.Length];
        var tops = new TokenLogprob[prompt.Length][];
        logprobs[0] = float.NaN;
        int topN = s.Request.PromptTopLogprobs;
        var last = new float[vocab];
        for (int start = 0; start < prompt.Length; start += piece)
        {
            int count = Math.Min(piece, prompt.Length - start);
            _engine.ForwardAll(s.Cache!, prompt.AsMemory(start, count), buffer.AsSpan(0, count * vocab));
            for (int j = 0; j < count; j++)
            {
                int position = start + j;
                var row = buffer.AsSpan(j * vocab, vocab);
                if (position + 1 < prompt.Length)
                {
                    float norm = Sampler.LogSumExp(row);
                    logprobs[position + 1] = row[prompt[position + 1]] - norm;
                    tops[position + 1] = TopLogprobs(row, norm, topN);
                }
                else row.CopyTo(last);
            }
        }
        s.ReportPrompt(new PromptScored(logprobs, tops));
        if (s.Request.MaxTokens != 0) s.Step(last);
    }

    private static TokenLogprob[] TopLogprobs(ReadOnlySpan<float> row, float norm, int n)
    {
        if (n <= 0) return [];
        var best = new List<TokenLogprob>(n + 1);
        for (int id = 0; id < row.Length; id++)
        {
            float v = row[id];
            if (best.Count == n && v <= best[^1].Logprob) continue;
            int at = best.Count;
            while (at > 0 && best[at - 1].Logprob < v) at--;
            best.Insert(at, new TokenLogprob(id, v));
            if (best.Count > n) best.RemoveAt(n);
        }
        return best.Select(t => t with { Logprob = t.Logprob - norm }).ToArray();
    }

    private void Retire()
    {
        for (int i = _running.Count - 1; i >= 0; i--)
        {
            var s = _running[i];
            if (!s.Finished) continue;
            _running.RemoveAt(i);
            Volatile.Write(ref _runningCount, _running.Count);
            _telemetry.Running(-1);
            if (s.Cache is { } cache)
            {
                Interlocked.Add(ref _cacheBytesInUse, -cache.Bytes);
                ReturnCache(cache);
            }
            s.Cache = null;
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        lock (_gate) _stop.Cancel();
        // The engine is released only once its thread has stopped using it; a step stuck past the bound leaks it rather than freeing memory under a running kernel.
        if (_thread.Join(TimeSpan.FromSeconds(30))) _engine.Dispose();
        else _log.LogWarning("The batch thread of model {Model} did not stop within 30 s; its engine is not released", ModelId);
        _wake.Dispose();
        _stop.Dispose();
    }
}
