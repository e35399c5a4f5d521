using System.Text;
using FsCheck;
using FsCheck.Fluent;
using QuantServe.Engine.Formats.Gguf;

namespace QuantServe.Engine.Tests.Fuzzing;

/// <summary>FsCheck generators of GGUF metadata values, weighted towards what breaks readers: boundary integers of every
/// width, non-finite floats, wrong types, empty and oversized arrays, odd strings (invalid UTF-8, control characters).</summary>
internal static class GgufValueGen
{
    private static readonly long[] Boundary =
        [0, 1, 2, 3, 7, 8, 31, 32, 64, 255, 256, 511, 512, 513, 65535, 65536, int.MaxValue, (long)int.MaxValue + 1, uint.MaxValue,
         -1, -2, int.MinValue, long.MinValue, long.MaxValue, 1L << 40];

    public static readonly Gen<long> Integer = Gen.OneOf(
        Gen.Elements(Boundary),
        Gen.Choose(-4, 600).Select(i => (long)i),
        Gen.Choose(int.MinValue, int.MaxValue).Select(i => (long)i));

    public static readonly Gen<double> Float = Gen.OneOf(
        Gen.Elements(0.0, -0.0, 1e-5, 1e-6, 0.5, 1.0, 10000.0, -1.0, 1e300, double.NaN, double.PositiveInfinity, double.NegativeInfinity, 1e-40, 3.4e38),
        Gen.Choose(-1000, 100000).Select(i => i / 10.0));

    public static readonly Gen<byte[]> Utf8 = Gen.OneOf(
        Gen.Elements("", "a", " ", "\u2581", "<s>", "</s>", "<unk>", "<0x41>", "<0xZZ>", "<0x>", "llama", "gpt2", "a b", "ab",
                     "é", "中", "😀", "\0", "\n\n", "▁the", "Ġ", "ĠĠ").Select(s => Encoding.UTF8.GetBytes(s)),
        Gen.Elements(new byte[] { 0xFF }, new byte[] { 0xC3 }, new byte[] { 0xED, 0xA0, 0x80 }, new byte[] { 0xF0, 0x9F }),
        Gen.ArrayOf(Gen.Elements('a', 'b', ' ', '\u2581', 'é', '<', '>', '0', 'x')).Select(c => Encoding.UTF8.GetBytes(new string(c.Take(10).ToArray()))));

    private static Gen<int> Length => Gen.OneOf(Gen.Choose(0, 4), Gen.Elements(511, 512, 513), Gen.Choose(0, 700));

    public static readonly Gen<GgufValue> Scalar = Gen.OneOf(
        Integer.Select(i => GgufValue.FromUInt8((byte)i)),
        Integer.Select(i => GgufValue.FromInt8((sbyte)i)),
        Integer.Select(i => GgufValue.FromUInt16((ushort)i)),
        Integer.Select(i => GgufValue.FromInt16((short)i)),
        Integer.Select(i => GgufValue.FromUInt32((uint)i)),
        Integer.Select(i => GgufValue.FromInt32((int)i)),
        Integer.Select(i => GgufValue.FromUInt64((ulong)i)),
        Integer.Select(i => GgufValue.FromInt64(i)),
        Float.Select(f => GgufValue.FromFloat32((float)f)),
        Float.Select(GgufValue.FromFloat64),
        Gen.Elements(true, false).Select(GgufValue.FromBool),
        Utf8.Select(GgufValue.FromUtf8));

    public static readonly Gen<GgufValue> Array = Gen.OneOf(
        Length.SelectMany(n => Gen.ArrayOf(Utf8, n)).Select(a => GgufValue.FromArray(a.Select(b => Encoding.UTF8.GetString(b)))),
        Length.SelectMany(n => Gen.ArrayOf(Float, n)).Select(a => GgufValue.FromArray(a.Select(f => (float)f).ToArray())),
        Length.SelectMany(n => Gen.ArrayOf(Float, n)).Select(a => GgufValue.FromArray(a)),
        Length.SelectMany(n => Gen.ArrayOf(Integer, n)).Select(a => GgufValue.FromArray(a.Select(i => (int)i).ToArray())),
        Length.SelectMany(n => Gen.ArrayOf(Integer, n)).Select(a => GgufValue.FromArray(a.Select(i => (uint)i).ToArray())),
        Length.SelectMany(n => Gen.ArrayOf(Integer, n)).Select(a => GgufValue.FromArray(a.Select(i => (byte)i).ToArray())),
        Length.SelectMany(n => Gen.ArrayOf(Integer, n)).Select(a => GgufValue.FromArray(a)),
        Length.SelectMany(n => Gen.ArrayOf(Gen.Elements(true, false), n)).Select(GgufValue.FromArray),
        Gen.Choose(0, 3).SelectMany(n => Gen.ArrayOf(Gen.Choose(0, 3).Select(k => GgufValue.FromArray(new int[k])), n)).Select(a => GgufValue.FromArray(a)));

    public static readonly Gen<GgufValue> Value = Gen.Frequency((3, Scalar), (1, Array));
}
