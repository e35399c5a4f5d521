using FsCheck;
using FsCheck.Fluent;
using QuantServe.Engine.Formats.Gguf;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Tests.Formats.Gguf;

public class GgufMetadataPropertyTests
{
    private static readonly Gen<string> Text =
        Gen.ArrayOf(Gen.Elements('a', 'z', ' ', '\u2581', 'é', '中', '\n', '0')).Select(c => new string(c.Take(12).ToArray()));

    private static Gen<T[]> Small<T>(Gen<T> g) => Gen.ArrayOf(g).Select(a => a.Take(6).ToArray());

    private static readonly Gen<GgufValue> Scalar = Gen.OneOf(
        Gen.Choose(0, 255).Select(i => GgufValue.FromUInt8((byte)i)),
        Gen.Choose(-128, 127).Select(i => GgufValue.FromInt8((sbyte)i)),
        Gen.Choose(0, 65535).Select(i => GgufValue.FromUInt16((ushort)i)),
        Gen.Choose(-32768, 32767).Select(i => GgufValue.FromInt16((short)i)),
        Gen.Choose(int.MinValue, int.MaxValue).Select(i => GgufValue.FromUInt32((uint)i)),
        Gen.Choose(int.MinValue, int.MaxValue).Select(GgufValue.FromInt32),
        Gen.Two(Gen.Choose(int.MinValue, int.MaxValue)).Select(p => GgufValue.FromUInt64(((ulong)(uint)p.Item1 << 32) | (uint)p.Item2)),
        Gen.Two(Gen.Choose(int.MinValue, int.MaxValue)).Select(p => GgufValue.FromInt64(((long)p.Item1 << 32) | (uint)p.Item2)),
        Gen.Choose(int.MinValue, int.MaxValue).Select(i => GgufValue.FromFloat32(BitConverter.Int32BitsToSingle(i))),
        Gen.Two(Gen.Choose(int.MinValue, int.MaxValue)).Select(p => GgufValue.FromFloat64(BitConverter.Int64BitsToDouble(((long)p.Item1 << 32) | (uint)p.Item2))),
        Gen.Elements(true, false).Select(GgufValue.FromBool),
        Text.Select(GgufValue.FromString));

    private static readonly Gen<GgufValue> FlatArray = Gen.OneOf(
        Small(Gen.Choose(0, 255).Select(i => (byte)i)).Select(GgufValue.FromArray),
        Small(Gen.Choose(int.MinValue, int.MaxValue)).Select(GgufValue.FromArray),
        Small(Gen.Choose(int.MinValue, int.MaxValue).Select(i => (long)i * 7919)).Select(GgufValue.FromArray),
        Small(Gen.Choose(int.MinValue, int.MaxValue).Select(BitConverter.Int32BitsToSingle)).Select(GgufValue.FromArray),
        Small(Gen.Elements(true, false)).Select(GgufValue.FromArray),
        Small(Text).Select(a => GgufValue.FromArray(a)));

    private static readonly Gen<GgufValue> Value = Gen.OneOf(Scalar, Scalar, FlatArray,
        Small(FlatArray).Select(a => GgufValue.FromArray(a)),
        Small(Small(FlatArray).Select(a => GgufValue.FromArray(a))).Select(a => GgufValue.FromArray(a)));

    [Fact]
    public void WriteThenOpen_RandomTypedMetadata_ReadsBackBitExactInOrder()
    {
        var entries = Small(Value).Select(values => values.Select((v, i) => ($"k{i}.{v.Type}", v)).ToList());
        using var dir = new TempDir();
        int run = 0;
        Prop.ForAll(entries.ToArbitrary(), list =>
        {
            var meta = new GgufMetadata();
            foreach (var (k, v) in list) meta.Set(k, v);
            var w = new GgufWriter(meta);
            w.AddTensor("t", [32], GgmlType.F16, new byte[64]);
            string path = dir.File($"p{run++}.gguf");
            w.Write(path);
            using var f = GgufFile.Open(path);
            return f.Metadata.Keys.SequenceEqual(list.Select(e => e.Item1))
                && list.All(e => e.Item2.Equals(f.Metadata[e.Item1]))
                && f.Tensor("t").Offset == 0 && f.DataOffset % 32 == 0;
        }).QuickCheckThrowOnFailure();
    }
}
