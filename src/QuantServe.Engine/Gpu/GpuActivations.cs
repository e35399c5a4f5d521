using System.Runtime.InteropServices;
using QuantServe.Engine.Gpu.Cuda;

namespace QuantServe.Engine.Gpu;

/// <summary>The kernel argument for int8-quantized activations; mirrors <c>struct QAct</c> in gemvq.cu.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct QAct
{
    public ulong Q, D, S;
    public int Qs, Ds;
}

/// <summary>
/// Device scratch for activations quantized to int8 per block of 32 (codes, block scales d, and d·Σq per block), the input
/// of the integer-dot GEMV kernels. Sized for <see cref="MaxBatch"/> rows of up to <c>maxWidth</c> elements.
/// </summary>
public sealed class GpuActivations : IDisposable
{
    /// <summary>Allocates room for <paramref name="maxBatch"/> rows of <paramref name="maxWidth"/> elements (rounded up to 256).</summary>
    public GpuActivations(CudaDevice device, int maxBatch, int maxWidth)
    {
        int width = (maxWidth + 255) & ~255;
        MaxBatch = maxBatch;
        MaxStride = Stride = width;
        Codes = device.AllocateZeroed((long)maxBatch * width);
        Scales = device.AllocateZeroed((long)maxBatch * width / 32 * 4);
        Sums = device.AllocateZeroed((long)maxBatch * width / 32 * 4);
    }

    /// <summary>Most rows.</summary>
    public int MaxBatch { get; }

    /// <summary>Widest row (elements) the buffers hold.</summary>
    public int MaxStride { get; }

    /// <summary>Elements per row of the last quantization (its padded width).</summary>
    public int Stride { get; internal set; }

    internal DeviceBuffer Codes { get; }
    internal DeviceBuffer Scales { get; }
    internal DeviceBuffer Sums { get; }

    /// <summary>Device bytes held.</summary>
    public long Bytes => Codes.Capacity + Scales.Capacity + Sums.Capacity;

    /// <inheritdoc />
    public void Dispose()
    {
        Codes.Dispose();
        Scales.Dispose();
        Sums.Dispose();
    }
}
