using System.Buffers.Binary;
using QuantServe.Engine.Models;

namespace QuantServe.Engine.Formats.Gguf;

/// <summary>
/// A bounds-checked little-endian read position over a mapped GGUF file. Every read first checks that the bytes
/// exist, so a truncated or lying file ends in a <see cref="ModelLoadException"/> that says what was being read where.
/// </summary>
internal sealed unsafe class GgufCursor(string path, byte* start, long length)
{
    public long Position { get; set; }

    public long Remaining => length - Position;

    public string Path => path;

    public ModelLoadException Error(string problem) => new(path, problem);

    /// <summary>Throws unless <paramref name="count"/> bytes remain.</summary>
    public void Need(long count, string what)
    {
        if (count < 0 || count > Remaining)
            throw Error($"truncated file: {what} at offset {Position} needs {count} bytes but only {Math.Max(0, Remaining)} remain (file is {length} bytes)");
    }

    public ReadOnlySpan<byte> Bytes(int count, string what)
    {
        Need(count, what);
        var span = new ReadOnlySpan<byte>(start + Position, count);
        Position += count;
        return span;
    }

    public byte U8(string what) => Bytes(1, what)[0];
    public ushort U16(string what) => BinaryPrimitives.ReadUInt16LittleEndian(Bytes(2, what));
    public uint U32(string what) => BinaryPrimitives.ReadUInt32LittleEndian(Bytes(4, what));
    public ulong U64(string what) => BinaryPrimitives.ReadUInt64LittleEndian(Bytes(8, what));

    /// <summary>Reads a uint64 element count and checks that <paramref name="minBytesEach"/> × count bytes can still follow.</summary>
    public int Count(string what, long minBytesEach)
    {
        long at = Position;
        ulong n = U64(what);
        if (n > int.MaxValue || (long)n * Math.Max(1, minBytesEach) > Remaining)
            throw Error($"{what} {n} at offset {at} is impossible: {n} × at least {Math.Max(1, minBytesEach)} bytes cannot fit in the {Remaining} bytes that remain (truncated or corrupt file)");
        return (int)n;
    }

    /// <summary>Reads a GGUF string (uint64 length + bytes) as raw bytes. <paramref name="index"/> ≥ 0 names an array
    /// element; the description is only formatted on failure, so reading a 100k-token vocabulary allocates nothing extra.</summary>
    public byte[] StringBytes(string what, int index = -1)
    {
        long at = Position;
        if (Remaining < 8) Need(8, Describe(what, index) + " length");
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(start + Position, 8));
        Position += 8;
        if (n > (ulong)Remaining || n > int.MaxValue)
            throw Error($"{Describe(what, index)} at offset {at} claims {n} bytes but only {Remaining} remain in the file (truncated or corrupt)");
        var result = new ReadOnlySpan<byte>(start + Position, (int)n).ToArray();
        Position += (long)n;
        return result;
    }

    private static string Describe(string what, int index) => index >= 0 ? $"{what} element {index}" : what;

    /// <summary>Copies <paramref name="count"/> little-endian elements into a new array of <typeparamref name="T"/>.</summary>
    public T[] Array<T>(int count, string what) where T : unmanaged
    {
        long bytes = (long)count * sizeof(T);
        Need(bytes, what);
        if (bytes > int.MaxValue) throw Error($"{what} at offset {Position} is {bytes} bytes, more than QuantServe reads into memory");
        var result = new T[count];
        new ReadOnlySpan<byte>(start + Position, (int)bytes).CopyTo(System.Runtime.InteropServices.MemoryMarshal.AsBytes(result.AsSpan()));
        Position += bytes;
        return result;
    }
}
