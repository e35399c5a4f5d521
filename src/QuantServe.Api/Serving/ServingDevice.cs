using Microsoft.Extensions.Options;
using QuantServe.Api.Hosting;
using QuantServe.Engine.Gpu;
using QuantServe.Engine.Gpu.Cuda;
using QuantServe.Engine.Kernels.Cpu;
using QuantServe.Engine.Models;

namespace QuantServe.Api.Serving;

/// <summary>
/// Where the server runs its models, decided once at startup from <c>QuantServe:Device</c>:
/// <list type="bullet">
/// <item><c>auto</c> (default): cuda:0 when a CUDA driver, a device and NVRTC are usable, else the CPU, with one log line
/// saying which and why (the normal case in CI);</item>
/// <item><c>cpu</c>: the CPU;</item>
/// <item><c>cuda:N</c>: that device, or the server does not start — an explicit device that cannot be opened (no driver,
/// no such ordinal, kernels failing to compile) is a configuration error, not a reason to serve at CPU speed unnoticed.</item>
/// </list>
/// A model that cannot be uploaded (out of device memory, an unsupported shape) is served on the CPU with a warning.
/// All work on the device (uploads, steps, cache allocation and release) holds <see cref="Gate"/>: the device's stream
/// and memory pool belong to one thread at a time.
/// </summary>
public sealed class ServingDevice : IDisposable
{
    private readonly ILogger _log;

    /// <summary>Resolves the configured device; throws <see cref="InvalidOperationException"/> naming the setting when it
    /// is malformed or names a CUDA device that cannot be opened.</summary>
    public ServingDevice(IOptions<QuantServeOptions> options, ILogger<ServingDevice> log)
    {
        _log = log;
        string? setting = options.Value.Device;
        try
        {
            Selection = DeviceSelection.Parse(setting);
        }
        catch (FormatException e)
        {
            throw new InvalidOperationException($"QuantServe:Device: {e.Message}", e);
        }
        try
        {
            Backend = CudaBackend.Select(Selection, line => log.LogInformation("Serving {Device}", line));
        }
        catch (CudaException e)
        {
            throw new InvalidOperationException(
                $"QuantServe:Device={Selection} cannot be used: {e.Message}. Set QuantServe:Device=auto to fall back to the CPU when no GPU is usable, or cpu.", e);
        }
        Name = Backend is null ? "cpu" : Selection.Kind == DeviceKind.Cuda ? Selection.ToString() : "cuda:0";
        if (MemoryInfo() is { } m) UsedAtStartBytes = m.Total - m.Free;
        Description = Backend?.Description ?? "cpu";
    }

    /// <summary>The parsed setting.</summary>
    public DeviceSelection Selection { get; }

    /// <summary>The opened CUDA backend, or null on the CPU.</summary>
    public CudaBackend? Backend { get; }

    /// <summary><c>cpu</c> or <c>cuda:N</c>.</summary>
    public string Name { get; }

    /// <summary><c>cpu</c> or the device with its driver and NVRTC versions.</summary>
    public string Description { get; }

    /// <summary>Device memory in use (by anyone) once the backend had opened its context and loaded its kernels, before any
    /// model: the baseline against which the driver's view of QuantServe's models is measured. 0 on the CPU.</summary>
    public long UsedAtStartBytes { get; }

    /// <summary>Held for every call into the device.</summary>
    public Lock Gate { get; } = new();

    /// <summary>Free and total device memory, or null on the CPU.</summary>
    public (long Free, long Total)? MemoryInfo()
    {
        if (Backend is null) return null;
        lock (Gate)
        {
            Backend.Device.Bind();
            return Backend.Device.MemoryInfo();
        }
    }

    /// <summary>The engine for <paramref name="model"/>: uploaded to the device when there is one (falling back to the CPU
    /// with a warning when the upload fails), else the CPU engine.</summary>
    public IBatchEngine CreateEngine(LoadedModel model, string modelId, int maxBatchTokens, WorkerPool? workers)
    {
        var engine = CreateUnwrapped(model, modelId, maxBatchTokens, workers);
        return EngineWrapper is { } wrap ? wrap(engine) : engine;
    }

    /// <summary>
    /// Wraps every engine created from now on (instrumentation; tests use it to hold a step until a client has gone,
    /// which makes timing-dependent serving behaviour deterministic). Null: engines are used as created.
    /// </summary>
    public Func<IBatchEngine, IBatchEngine>? EngineWrapper { get; set; }

    private IBatchEngine CreateUnwrapped(LoadedModel model, string modelId, int maxBatchTokens, WorkerPool? workers)
    {
        if (Backend is not null)
        {
            try
            {
                return new DeviceBatchEngine(this, model, maxBatchTokens);
            }
            catch (Exception e) when (e is CudaException or NotSupportedException or ArgumentException)
            {
                _log.LogWarning("Model {Model} stays on the CPU: uploading it to {Device} failed: {Problem}", modelId, Name, e.Message);
            }
        }
        return new CpuBatchEngine(model, maxBatchTokens, workers);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        lock (Gate) Backend?.Dispose();
    }
}
