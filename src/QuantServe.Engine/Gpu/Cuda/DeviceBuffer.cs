namespace QuantServe.Engine.Gpu.Cuda;

/// <summary>A block of device memory from a <see cref="CudaDevice"/>'s pool. Disposing returns it to the pool.</summary>
public sealed class DeviceBuffer : IDisposable
{
    private readonly CudaDevice _device;

    internal DeviceBuffer(CudaDevice device, ulong pointer, long bytes, long capacity)
    {
        _device = device;
        Pointer = pointer;
        Bytes = bytes;
        Capacity = capacity;
    }

    /// <summary>The device address.</summary>
    public ulong Pointer { get; private set; }

    /// <summary>Bytes requested.</summary>
    public long Bytes { get; }

    /// <summary>Bytes actually reserved (the pool's size class).</summary>
    public long Capacity { get; }

    /// <summary>The address <paramref name="offset"/> bytes in.</summary>
    public ulong At(long offset) => Pointer + (ulong)offset;

    /// <inheritdoc />
    public void Dispose()
    {
        if (Pointer == 0) return;
        _device.Release(Pointer, Capacity);
        Pointer = 0;
    }
}

/// <summary>One kernel argument, passed by value to <c>cuLaunchKernel</c> from an 8-byte slot (ints and floats use the low bytes).</summary>
public readonly struct KernelArg
{
    private KernelArg(ulong bits) => Bits = bits;

    /// <summary>The raw little-endian slot.</summary>
    public ulong Bits { get; }

    /// <summary>A 32-bit integer.</summary>
    public static implicit operator KernelArg(int v) => new((uint)v);
    /// <summary>A 64-bit integer.</summary>
    public static implicit operator KernelArg(long v) => new((ulong)v);
    /// <summary>A float.</summary>
    public static implicit operator KernelArg(float v) => new(BitConverter.SingleToUInt32Bits(v));
    /// <summary>A device pointer.</summary>
    public static implicit operator KernelArg(ulong v) => new(v);
    /// <summary>A buffer's device pointer (0 for null).</summary>
    public static implicit operator KernelArg(DeviceBuffer? b) => new(b?.Pointer ?? 0);
}
