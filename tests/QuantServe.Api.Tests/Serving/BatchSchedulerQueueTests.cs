using Microsoft.Extensions.Logging.Abstractions;
using QuantServe.Api.OpenAi;
using QuantServe.Api.Serving;
using QuantServe.Api.Telemetry;
using QuantServe.Api.Tests.Quantization;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;

namespace QuantServe.Api.Tests.Serving;

public sealed class BatchSchedulerQueueTests
{
    private static GenerationRequest Long(CancellationToken cancellation) => new()
    {
        Prompt = [1, 450],
        MaxTokens = 400,
        Sampling = new SamplingOptions { Temperature = 0.8f, Seed = 1, LogitBias = new Dictionary<int, float> { [2] = -100 } },
        Cancellation = cancellation,
    };

    [Fact]
    public async Task Submit_QueueFullOfDisconnectedClients_AcceptsNewRequest()
    {
        using var model = ModelLoader.Load(Path.Combine(JobHost.ProseGgufDir, "prose-15m-f16.gguf"));
        using var telemetry = new QuantServeTelemetry();
        using var scheduler = new BatchScheduler(model, "prose", new SchedulerOptions(MaxBatch: 1, MaxContext: 512, MaxQueue: 1, MaxBatchTokens: 64, RetryAfterSeconds: 1),
            telemetry, NullLogger.Instance);
        using var stop = new CancellationTokenSource();
        var running = scheduler.Submit(Long(stop.Token));
        await running.ReadAsync(); // the first token: it holds the only batch slot now

        using var gone = new CancellationTokenSource();
        var waiting = scheduler.Submit(Long(gone.Token));
        Assert.Equal(1, scheduler.Waiting);
        Assert.Throws<OpenAiException>(() => scheduler.Submit(Long(CancellationToken.None)));

        // The waiting client disconnects: its queue place is free for the next request at once.
        gone.Cancel();
        var next = scheduler.Submit(Long(stop.Token));
        Assert.Equal(1, scheduler.Waiting);
        Assert.Equal(1, scheduler.Running);
        await waiting.Completion; // ended silently
        stop.Cancel();
    }
}
