using System.Buffers.Binary;
using System.Text;

namespace QuantServe.Engine.Tests.Fuzzing;

/// <summary>
/// An independent walk over a GGUF header that records where its integer fields lie (counts, string lengths, value
/// and element types, array lengths, tensor n_dims, dimensions, types and offsets, the alignment value), so mutants
/// can rewrite them with boundary values. Long string arrays contribute a spread sample of their element lengths.
/// </summary>
internal static class GgufFieldMap
{
    public static (List<FieldSpot> Fields, long HeaderEnd) Walk(byte[] f)
    {
        var spots = new List<FieldSpot>();
        long p = 0;
        ulong U64() { ulong v = BinaryPrimitives.ReadUInt64LittleEndian(f.AsSpan((int)p)); p += 8; return v; }
        uint U32() { uint v = BinaryPrimitives.ReadUInt32LittleEndian(f.AsSpan((int)p)); p += 4; return v; }
        string Str(string what, bool record = true)
        {
            if (record) spots.Add(new(p, 8, what + ".len"));
            int n = (int)U64();
            string s = Encoding.UTF8.GetString(f, (int)p, n);
            p += n;
            return s;
        }
        void ArrayBody(string key)
        {
            spots.Add(new(p, 4, key + ".elemtype"));
            uint et = U32();
            spots.Add(new(p, 8, key + ".count"));
            long count = (long)U64();
            if (et == 8)
            {
                long step = Math.Max(1, count / 64);
                for (long k = 0; k < count; k++) Str($"{key}[{k}]", record: k % step == 0);
            }
            else if (et == 9)
            {
                for (long k = 0; k < count; k++) ArrayBody($"{key}[{k}]");
            }
            else
            {
                if (count > 0) spots.Add(new(p, Size(et), key + "[0]"));
                p += count * Size(et);
            }
        }
        static int Size(uint t) => t switch { 0 or 1 or 7 => 1, 2 or 3 => 2, 4 or 5 or 6 => 4, 10 or 11 or 12 => 8, _ => -1 };

        spots.Add(new(4, 4, "version"));
        p = 8;
        spots.Add(new(p, 8, "tensor_count"));
        ulong tensors = U64();
        spots.Add(new(p, 8, "kv_count"));
        ulong kvs = U64();
        for (ulong i = 0; i < kvs; i++)
        {
            string key = Str($"key{i}");
            spots.Add(new(p, 4, key + ".type"));
            uint type = U32();
            if (type == 8) Str(key);
            else if (type == 9) ArrayBody(key);
            else
            {
                int size = Size(type);
                spots.Add(new(p, size, key));
                p += size;
            }
        }
        for (ulong i = 0; i < tensors; i++)
        {
            string name = Str($"tensor{i}.name");
            spots.Add(new(p, 4, name + ".n_dims"));
            uint nDims = U32();
            for (int d = 0; d < nDims; d++) spots.Add(new(p + 8 * d, 8, $"{name}.ne[{d}]"));
            p += 8L * nDims;
            spots.Add(new(p, 4, name + ".type"));
            p += 4;
            spots.Add(new(p, 8, name + ".offset"));
            p += 8;
        }
        return (spots, p);
    }
}
