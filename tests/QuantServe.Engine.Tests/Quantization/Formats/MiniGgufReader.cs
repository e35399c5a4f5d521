using System.Buffers.Binary;
using System.Text;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Tests.Quantization.Formats;

/// <summary>
/// Just enough GGUF (v2/v3) to find tensor bytes in the shared prose-15m files: header, skipped metadata values,
/// tensor infos, aligned data section. Test-only, until the engine's GGUF reader lands on main.
/// </summary>
internal sealed unsafe class MiniGgufReader : IDisposable
{
    internal sealed record TensorEntry(string Name, GgmlType Type, long[] Dims, long Offset)
    {
        /// <summary>Elements along the innermost dimension (one row).</summary>
        public int Cols => checked((int)Dims[0]);

        /// <summary>Number of rows (product of the outer dimensions).</summary>
        public int Rows => checked((int)Dims.Skip(1).Aggregate(1L, (a, b) => a * b));
    }

    private readonly MappedFile _file;
    private readonly Dictionary<string, TensorEntry> _tensors = new();
    private readonly long _dataStart;

    public MiniGgufReader(string path)
    {
        _file = MappedFile.Open(path);
        var s = new ReadOnlySpan<byte>(_file.Pointer, checked((int)_file.Length));
        long p = 0;
        if (BinaryPrimitives.ReadUInt32LittleEndian(s) != 0x46554747) throw new InvalidDataException($"{path}: not GGUF");
        p += 8; // magic, version
        long tensorCount = (long)BinaryPrimitives.ReadUInt64LittleEndian(s[(int)p..]); p += 8;
        long kvCount = (long)BinaryPrimitives.ReadUInt64LittleEndian(s[(int)p..]); p += 8;
        long alignment = 32;
        for (long i = 0; i < kvCount; i++)
        {
            string key = ReadString(s, ref p);
            uint type = U32(s, ref p);
            if (key == "general.alignment" && type == 4) alignment = BinaryPrimitives.ReadUInt32LittleEndian(s[(int)p..]);
            SkipValue(s, ref p, type);
        }
        for (long i = 0; i < tensorCount; i++)
        {
            string name = ReadString(s, ref p);
            uint nd = U32(s, ref p);
            var dims = new long[nd];
            for (int d = 0; d < nd; d++) { dims[d] = (long)BinaryPrimitives.ReadUInt64LittleEndian(s[(int)p..]); p += 8; }
            var type = (GgmlType)U32(s, ref p);
            long offset = (long)BinaryPrimitives.ReadUInt64LittleEndian(s[(int)p..]); p += 8;
            _tensors[name] = new TensorEntry(name, type, dims, offset);
        }
        _dataStart = (p + alignment - 1) / alignment * alignment;
    }

    public IEnumerable<TensorEntry> Tensors => _tensors.Values;

    public TensorEntry Tensor(string name) => _tensors[name];

    /// <summary>Pointer to the first byte of <paramref name="t"/>'s data.</summary>
    public byte* Data(TensorEntry t) => _file.Pointer + _dataStart + t.Offset;

    /// <summary>Row <paramref name="row"/> of an F16 or F32 tensor as floats.</summary>
    public void ReadFloatRow(TensorEntry t, int row, Span<float> destination)
    {
        byte* p = Data(t);
        if (t.Type == GgmlType.F16)
        {
            var h = new ReadOnlySpan<ushort>(p + (long)row * t.Cols * 2, t.Cols);
            for (int i = 0; i < t.Cols; i++) destination[i] = (float)BitConverter.UInt16BitsToHalf(h[i]);
        }
        else if (t.Type == GgmlType.F32)
            new ReadOnlySpan<float>(p + (long)row * t.Cols * 4, t.Cols).CopyTo(destination);
        else throw new NotSupportedException($"{t.Name}: {t.Type} is not a float type");
    }

    private static uint U32(ReadOnlySpan<byte> s, ref long p)
    {
        uint v = BinaryPrimitives.ReadUInt32LittleEndian(s[(int)p..]);
        p += 4;
        return v;
    }

    private static string ReadString(ReadOnlySpan<byte> s, ref long p)
    {
        int n = checked((int)BinaryPrimitives.ReadUInt64LittleEndian(s[(int)p..]));
        p += 8;
        var str = Encoding.UTF8.GetString(s.Slice((int)p, n));
        p += n;
        return str;
    }

    private static void SkipValue(ReadOnlySpan<byte> s, ref long p, uint type)
    {
        switch (type)
        {
            case 0: case 1: case 7: p += 1; break;
            case 2: case 3: p += 2; break;
            case 4: case 5: case 6: p += 4; break;
            case 10: case 11: case 12: p += 8; break;
            case 8: ReadString(s, ref p); break;
            case 9:
                uint itemType = U32(s, ref p);
                long n = (long)BinaryPrimitives.ReadUInt64LittleEndian(s[(int)p..]);
                p += 8;
                for (long i = 0; i < n; i++) SkipValue(s, ref p, itemType);
                break;
            default: throw new InvalidDataException($"GGUF value type {type}");
        }
    }

    public void Dispose() => _file.Dispose();
}
