using System.Text;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Tests.Quantization.Formats;

/// <summary>
/// Minimal GGUF v3 reader for the k-quant tests only (tensor directory + raw bytes), until the engine's GGUF reader
/// lands on main; then these tests switch to QuantServe.Engine.Formats.Gguf and this file goes.
/// </summary>
internal sealed class KQuantGgufTestFile
{
    public sealed record Tensor(string Name, GgmlType Type, long[] Shape, long Offset);

    private readonly byte[] _bytes;
    private readonly long _dataStart;

    public Dictionary<string, Tensor> Tensors { get; } = new();

    public KQuantGgufTestFile(string path)
    {
        _bytes = File.ReadAllBytes(path);
        var r = new BinaryReader(new MemoryStream(_bytes));
        if (Encoding.ASCII.GetString(r.ReadBytes(4)) != "GGUF") throw new InvalidDataException($"{path}: not GGUF");
        r.ReadUInt32();
        long nTensors = r.ReadInt64(), nKv = r.ReadInt64();
        uint alignment = 32;
        for (long i = 0; i < nKv; i++)
        {
            string key = ReadString(r);
            uint type = r.ReadUInt32();
            if (key == "general.alignment" && type == 4) { alignment = r.ReadUInt32(); continue; }
            SkipValue(r, type);
        }
        for (long i = 0; i < nTensors; i++)
        {
            string name = ReadString(r);
            uint nd = r.ReadUInt32();
            var shape = new long[nd];
            for (int d = 0; d < nd; d++) shape[d] = r.ReadInt64();
            var type = (GgmlType)r.ReadUInt32();
            long offset = r.ReadInt64();
            Tensors[name] = new Tensor(name, type, shape, offset);
        }
        long pos = r.BaseStream.Position;
        _dataStart = (pos + alignment - 1) / alignment * alignment;
    }

    /// <summary>Bytes of rows [row0, row0+rows) of a 2-D tensor.</summary>
    public ReadOnlySpan<byte> Rows(Tensor t, int row0, int rows)
    {
        long rowBytes = GgmlTypeInfo.RowBytes(t.Type, t.Shape[0]);
        return _bytes.AsSpan(checked((int)(_dataStart + t.Offset + row0 * rowBytes)), checked((int)(rows * rowBytes)));
    }

    /// <summary>Rows of an F16 tensor as floats.</summary>
    public float[] F16RowsAsFloat(Tensor t, int row0, int rows)
    {
        if (t.Type != GgmlType.F16) throw new InvalidDataException($"{t.Name} is {t.Type}, not F16");
        var raw = Rows(t, row0, rows);
        var f = new float[raw.Length / 2];
        for (int i = 0; i < f.Length; i++) f[i] = (float)BitConverter.UInt16BitsToHalf(BitConverter.ToUInt16(raw.Slice(2 * i, 2)));
        return f;
    }

    private static string ReadString(BinaryReader r) => Encoding.UTF8.GetString(r.ReadBytes(checked((int)r.ReadInt64())));

    private static void SkipValue(BinaryReader r, uint type)
    {
        switch (type)
        {
            case 0: case 1: case 7: r.ReadByte(); break;
            case 2: case 3: r.ReadUInt16(); break;
            case 4: case 5: case 6: r.ReadUInt32(); break;
            case 10: case 11: case 12: r.ReadUInt64(); break;
            case 8: ReadString(r); break;
            case 9:
                uint et = r.ReadUInt32();
                long n = r.ReadInt64();
                for (long i = 0; i < n; i++) SkipValue(r, et);
                break;
            default: throw new InvalidDataException($"GGUF value type {type}");
        }
    }
}
