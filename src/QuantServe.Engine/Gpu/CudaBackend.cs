using QuantServe.Engine.Gpu.Cuda;
using QuantServe.Engine.Models;

namespace QuantServe.Engine.Gpu;

/// <summary>The CUDA backend: a device, its compiled kernels, and models loaded onto it.</summary>
public sealed class CudaBackend : IComputeBackend
{
    private CudaBackend(CudaDevice device, GpuKernels kernels)
    {
        Device = device;
        Kernels = kernels;
    }

    /// <summary>The device.</summary>
    public CudaDevice Device { get; }

    /// <summary>The compiled kernels.</summary>
    public GpuKernels Kernels { get; }

    /// <inheritdoc />
    public string Description => $"{Device.Info}, driver CUDA {Device.Driver.Version / 1000}.{Device.Driver.Version % 1000 / 10}, NVRTC {Kernels.NvrtcVersion}";

    /// <summary>Opens cuda:<paramref name="ordinal"/> and compiles the kernels; throws <see cref="CudaException"/> saying what failed.</summary>
    public static CudaBackend Open(int ordinal)
    {
        var device = CudaDevice.Open(ordinal);
        try { return new CudaBackend(device, new GpuKernels(device)); }
        catch { device.Dispose(); throw; }
    }

    /// <summary>
    /// Resolves <paramref name="selection"/>: <c>cpu</c> → null; <c>cuda:N</c> → that device or an exception;
    /// <c>auto</c> → cuda:0 when a driver, a device and NVRTC are present, else null. <paramref name="log"/> receives one
    /// line saying what was chosen and, on fallback, why.
    /// </summary>
    public static CudaBackend? Select(DeviceSelection selection, Action<string> log)
    {
        switch (selection.Kind)
        {
            case DeviceKind.Cpu:
                log("device: cpu (QuantServe:Device=cpu)");
                return null;
            case DeviceKind.Cuda:
            {
                var b = Open(selection.Ordinal);
                log($"device: {b.Description}");
                return b;
            }
            default:
                if (CudaDriver.TryLoad(out var why) is not { } driver)
                {
                    log($"device: cpu (no CUDA: {why})");
                    return null;
                }
                try
                {
                    if (driver.DeviceCount == 0)
                    {
                        log("device: cpu (the CUDA driver sees no device)");
                        return null;
                    }
                    var b = Open(0);
                    log($"device: {b.Description}");
                    return b;
                }
                catch (CudaException e)
                {
                    log($"device: cpu (CUDA present but unusable: {e.Message})");
                    return null;
                }
        }
    }

    /// <inheritdoc />
    public IDeviceModel Load(LoadedModel model, int maxBatchTokens) => new GpuLlamaModel(Device, Kernels, model, maxBatchTokens);

    /// <inheritdoc />
    public void Dispose()
    {
        Kernels.Dispose();
        Device.Dispose();
    }
}
