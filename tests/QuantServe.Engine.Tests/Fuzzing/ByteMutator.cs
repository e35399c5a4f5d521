using System.Buffers.Binary;

namespace QuantServe.Engine.Tests.Fuzzing;

/// <summary>An integer field of a file format at a known offset (a count, a length, a dimension, an offset, a type id).</summary>
internal readonly record struct FieldSpot(long Offset, int Width, string Name);

/// <summary>
/// Seeded mutations of a file's bytes: bit flips, byte overwrites, truncation, insertion, deletion and rewrites of
/// known integer fields with boundary values. Each mutation appends a description to <see cref="Log"/> so a failing
/// case says exactly what was done to the file.
/// </summary>
internal sealed class ByteMutator(Random rng, List<string> log)
{
    private static readonly ulong[] Boundary =
    [
        0, 1, 2, 3, 7, 8, 31, 32, 33, 63, 64, 255, 256, 4095, 4096, 65535, 65536,
        0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 0x1_0000_0000, 0x7FFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000,
        0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFE, 1UL << 40, 1UL << 62,
    ];

    public List<string> Log => log;

    public Random Rng => rng;

    /// <summary>Applies 1–<paramref name="maxMutations"/> random mutations, biased towards [0, <paramref name="hotEnd"/>)
    /// and towards <paramref name="fields"/> when given.</summary>
    public byte[] Mutate(byte[] original, long hotEnd, IReadOnlyList<FieldSpot> fields, int maxMutations = 3)
    {
        var data = original;
        int n = 1 + rng.Next(maxMutations);
        for (int i = 0; i < n && data.Length > 0; i++)
        {
            long hot = Math.Min(hotEnd, data.Length);
            int kind = rng.Next(100);
            if (kind < 40 && fields.Count > 0) data = RewriteField(data, fields[rng.Next(fields.Count)]);
            else if (kind < 60) data = FlipBits(data, hot);
            else if (kind < 70) data = SetBytes(data, hot);
            else if (kind < 80) data = Truncate(data, hot);
            else if (kind < 90) data = Insert(data, hot);
            else data = Delete(data, hot);
        }
        return data;
    }

    private long Position(long hot, long length) =>
        rng.Next(4) == 0 ? rng.NextInt64(length) : rng.NextInt64(Math.Max(1, hot));

    public byte[] RewriteField(byte[] data, FieldSpot f)
    {
        if (f.Offset + f.Width > data.Length) return data;
        var copy = (byte[])data.Clone();
        var span = copy.AsSpan((int)f.Offset, f.Width);
        ulong old = f.Width switch
        {
            1 => span[0], 2 => BinaryPrimitives.ReadUInt16LittleEndian(span),
            4 => BinaryPrimitives.ReadUInt32LittleEndian(span), _ => BinaryPrimitives.ReadUInt64LittleEndian(span),
        };
        ulong value = rng.Next(8) switch
        {
            6 => (ulong)-(long)SignExtend(old, f.Width),
            7 => old / 2,
            0 => old + 1,
            1 => old - 1,
            2 => old * 2,
            3 => (ulong)rng.NextInt64() ^ ((ulong)rng.Next() << 32),
            4 => old + (ulong)rng.Next(1, 64),
            _ => Boundary[rng.Next(Boundary.Length)],
        };
        switch (f.Width)
        {
            case 1: span[0] = (byte)value; break;
            case 2: BinaryPrimitives.WriteUInt16LittleEndian(span, (ushort)value); break;
            case 4: BinaryPrimitives.WriteUInt32LittleEndian(span, (uint)value); break;
            default: BinaryPrimitives.WriteUInt64LittleEndian(span, value); break;
        }
        Log.Add($"field {f.Name}@{f.Offset} {old}->{value & (f.Width == 8 ? ulong.MaxValue : (1UL << (8 * f.Width)) - 1)}");
        return copy;
    }

    private static readonly int[] SignedBoundary = [0, 1, -1, 2, int.MinValue, int.MaxValue, int.MinValue + 1, 1 << 16, 1 << 24, 1 << 30, -(1 << 16)];

    /// <summary>Rewrites a little-endian int32 field with a signed boundary value or a small change of its own value.</summary>
    public byte[] RewriteInt32(byte[] data, FieldSpot f)
    {
        if (f.Offset + 4 > data.Length) return data;
        var copy = (byte[])data.Clone();
        var span = copy.AsSpan((int)f.Offset, 4);
        int old = BinaryPrimitives.ReadInt32LittleEndian(span);
        int value = rng.Next(6) switch
        {
            0 => unchecked(-old),
            1 => unchecked(old + rng.Next(-3, 4)),
            2 => unchecked(old * 2),
            3 => old / 2,
            _ => SignedBoundary[rng.Next(SignedBoundary.Length)],
        };
        BinaryPrimitives.WriteInt32LittleEndian(span, value);
        Log.Add($"int32 {f.Name}@{f.Offset} {old}->{value}");
        return copy;
    }

    private static long SignExtend(ulong v, int width) => width switch
    {
        1 => (sbyte)v, 2 => (short)v, 4 => (int)v, _ => (long)v,
    };

    private byte[] FlipBits(byte[] data, long hot)
    {
        var copy = (byte[])data.Clone();
        int flips = 1 + rng.Next(4);
        for (int i = 0; i < flips; i++)
        {
            long at = Position(hot, copy.Length);
            int bit = rng.Next(8);
            copy[at] ^= (byte)(1 << bit);
            Log.Add($"flip bit {bit}@{at}");
        }
        return copy;
    }

    private byte[] SetBytes(byte[] data, long hot)
    {
        var copy = (byte[])data.Clone();
        long at = Position(hot, copy.Length);
        int count = (int)Math.Min(1 + rng.Next(8), copy.Length - at);
        byte value = (byte)(rng.Next(3) switch { 0 => 0, 1 => 0xFF, _ => rng.Next(256) });
        copy.AsSpan((int)at, count).Fill(value);
        Log.Add($"set {count} bytes@{at} to 0x{value:X2}");
        return copy;
    }

    private byte[] Truncate(byte[] data, long hot)
    {
        long at = Position(hot, data.Length);
        Log.Add($"truncate to {at}");
        return data[..(int)at];
    }

    private byte[] Insert(byte[] data, long hot)
    {
        long at = Position(hot, data.Length + 1);
        int count = 1 + rng.Next(rng.Next(2) == 0 ? 8 : 64);
        var bytes = new byte[count];
        rng.NextBytes(bytes);
        Log.Add($"insert {count} bytes@{at}");
        return [.. data.AsSpan(0, (int)at), .. bytes, .. data.AsSpan((int)at)];
    }

    private byte[] Delete(byte[] data, long hot)
    {
        long at = Position(hot, data.Length);
        int count = (int)Math.Min(1 + rng.Next(rng.Next(2) == 0 ? 8 : 64), data.Length - at);
        Log.Add($"delete {count} bytes@{at}");
        return [.. data.AsSpan(0, (int)at), .. data.AsSpan((int)(at + count))];
    }
}
