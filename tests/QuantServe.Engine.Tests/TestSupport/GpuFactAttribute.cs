using QuantServe.Engine.Gpu.Cuda;

namespace QuantServe.Engine.Tests.TestSupport;

/// <summary>
/// A fact that needs a CUDA device and NVRTC. xunit 2 has no dynamic skip, so the skip reason is decided when the attribute
/// is constructed: on a machine without a driver (CI) the test is reported as skipped with the loader's reason.
/// </summary>
public sealed class GpuFactAttribute : FactAttribute
{
    private static readonly Lazy<string?> Missing = new(() =>
    {
        var driver = CudaDriver.TryLoad(out var failure);
        if (driver == null) return $"GPU test skipped: {failure}";
        try
        {
            if (driver.DeviceCount == 0) return "GPU test skipped: the CUDA driver sees no device";
        }
        catch (CudaException e) { return $"GPU test skipped: {e.Message}"; }
        return Nvrtc.TryLoad(out var nvrtcFailure) == null ? $"GPU test skipped: {nvrtcFailure}" : null;
    });

    /// <summary>Skips with the reason when no usable CUDA device is present.</summary>
    public GpuFactAttribute()
    {
        if (Missing.Value is { } reason) Skip = reason;
    }

    /// <summary>Whether a usable CUDA device is present.</summary>
    public static bool Available => Missing.Value is null;
}
