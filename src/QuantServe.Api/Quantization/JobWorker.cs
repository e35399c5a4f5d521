using System.Diagnostics;
using Microsoft.Extensions.Options;

namespace QuantServe.Api.Quantization;

/// <summary>
/// The hosted service draining the job queue with <see cref="JobsSettings.Concurrency"/> loops. At start it removes
/// partial artifacts, puts jobs a crash left running back in the queue and enqueues every queued job.
/// </summary>
public sealed class JobWorker : BackgroundService
{
    private readonly JobStore _store;
    private readonly JobQueue _queue;
    private readonly JobRunner _runner;
    private readonly QuantizationTelemetry _telemetry;
    private readonly JobsSettings _settings;
    private readonly ILogger<JobWorker> _log;

    /// <summary>Creates the worker.</summary>
    public JobWorker(JobStore store, JobQueue queue, JobRunner runner, QuantizationTelemetry telemetry, IOptions<JobsSettings> settings, ILogger<JobWorker> log)
    {
        _store = store;
        _queue = queue;
        _runner = runner;
        _telemetry = telemetry;
        _settings = settings.Value;
        _log = log;
    }

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await Task.Yield();
        _runner.RemovePartialArtifacts();
        int requeued = _store.RequeueInterrupted();
        _runner.RemoveStaleUploads();
        var queued = _store.QueuedIds();
        if (queued.Count > 0) _log.LogInformation("Resuming {Count} queued job(s), {Requeued} of them interrupted", queued.Count, requeued);
        var loops = Enumerable.Range(0, Math.Max(0, _settings.Concurrency)).Select(_ => Task.Run(() => Loop(stoppingToken), CancellationToken.None)).ToList();
        try
        {
            // The backlog may exceed the channel's capacity: wait for room while the workers drain it.
            foreach (var id in queued) await _queue.EnqueueAsync(id, stoppingToken);
        }
        catch (OperationCanceledException) { }
        await Task.WhenAll(loops);
    }

    private async Task Loop(CancellationToken stopping)
    {
        while (!stopping.IsCancellationRequested)
        {
            string id;
            try { id = await _queue.DequeueAsync(stopping); }
            catch (OperationCanceledException) { return; }
            if (!_store.TryStart(id, DateTimeOffset.UtcNow)) continue;
            var job = _store.Find(id)!;
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(stopping);
            _queue.Running(id, cts);
            var clock = Stopwatch.StartNew();
            try
            {
                await Task.Run(() => _runner.Run(job, cts.Token), CancellationToken.None);
            }
            catch (OperationCanceledException)
            {
                // Shutdown leaves the job 'running' so the next start re-queues it; a client's cancel already stored 'cancelled'.
            }
            catch (Exception e)
            {
                _log.LogError(e, "Job {Job} crashed the worker loop", id);
                _store.Fail(id, e.Message, DateTimeOffset.UtcNow);
            }
            finally
            {
                _queue.Finished(id);
                _telemetry.RecordDuration(job.Method, _store.Find(id)?.Status ?? "unknown", clock.Elapsed.TotalSeconds);
            }
        }
    }
}
