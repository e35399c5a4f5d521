using System.Security.Cryptography;
using QuantServe.Engine.Formats.Gguf;
using QuantServe.Engine.Tensors;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Formats.Gguf;

public class GgufWriterTests
{
    private static byte[] Sha256(string path)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using var s = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        var buffer = new byte[1 << 16];
        int n;
        while ((n = s.Read(buffer)) > 0) hash.AppendData(buffer, 0, n);
        return hash.GetHashAndReset();
    }

    [Theory]
    [InlineData("prose-15m-f16.gguf")]
    [InlineData("prose-15m-Q4_K_M.gguf")]
    [InlineData("prose-15m-Q2_K.gguf")]
    [InlineData("prose-15m-Q8_0.gguf")]
    public void Write_ReadBackOfLlamaCppFile_IsByteIdentical(string name)
    {
        using var dir = new TempDir();
        string source = Path.Combine(SharedAssets.Prose15mGguf, name);
        string copy = dir.File(name);
        using (var f = GgufFile.Open(source)) GgufWriter.FromFile(f).Write(copy);
        Assert.Equal(new FileInfo(source).Length, new FileInfo(copy).Length);
        Assert.Equal(Sha256(source), Sha256(copy));
        Assert.Single(Directory.EnumerateFileSystemEntries(dir.Path)); // no temporary left behind
    }

    private static GgufMetadata EveryValueType()
    {
        var m = new GgufMetadata();
        m.Set("general.architecture", GgufValue.FromString("llama"));
        m.Set("t.u8", GgufValue.FromUInt8(200));
        m.Set("t.i8", GgufValue.FromInt8(-100));
        m.Set("t.u16", GgufValue.FromUInt16(60000));
        m.Set("t.i16", GgufValue.FromInt16(-30000));
        m.Set("t.u32", GgufValue.FromUInt32(4_000_000_000));
        m.Set("t.i32", GgufValue.FromInt32(-2_000_000_000));
        m.Set("t.u64", GgufValue.FromUInt64(ulong.MaxValue));
        m.Set("t.i64", GgufValue.FromInt64(long.MinValue));
        m.Set("t.f32", GgufValue.FromFloat32(BitConverter.UInt32BitsToSingle(0x7fc00123))); // NaN with payload
        m.Set("t.f64", GgufValue.FromFloat64(-0.0));
        m.Set("t.bool", GgufValue.FromBool(true));
        m.Set("t.str", GgufValue.FromString("ünïcødé ▁ <s>"));
        m.Set("t.bad_utf8", GgufValue.FromUtf8([0xff, 0xfe, 0x41]));
        m.Set("t.empty", GgufValue.FromString(""));
        m.Set("t.a_u8", GgufValue.FromArray(new byte[] { 1, 2, 255 }));
        m.Set("t.a_i8", GgufValue.FromArray(new sbyte[] { -1, 2 }));
        m.Set("t.a_u16", GgufValue.FromArray(new ushort[] { 1, 65535 }));
        m.Set("t.a_i16", GgufValue.FromArray(new short[] { -5, 5 }));
        m.Set("t.a_u32", GgufValue.FromArray(new uint[] { 7 }));
        m.Set("t.a_i32", GgufValue.FromArray(new[] { -7, 0, 7 }));
        m.Set("t.a_u64", GgufValue.FromArray(new ulong[] { 1UL << 63 }));
        m.Set("t.a_i64", GgufValue.FromArray(new long[] { -1 }));
        m.Set("t.a_f32", GgufValue.FromArray(new[] { 1.5f, float.NegativeInfinity }));
        m.Set("t.a_f64", GgufValue.FromArray(new[] { Math.PI }));
        m.Set("t.a_bool", GgufValue.FromArray(new[] { true, false, true }));
        m.Set("t.a_str", GgufValue.FromArray(new[] { "a", "", "▁the" }));
        m.Set("t.a_empty", GgufValue.FromArray(Array.Empty<float>()));
        m.Set("t.a_nested", GgufValue.FromArray(new[]
        {
            GgufValue.FromArray(new[] { 1, 2 }),
            GgufValue.FromArray(new[] { "x", "yz" }),
            GgufValue.FromArray(new[] { GgufValue.FromArray(new[] { 0.25 }) }),
        }));
        return m;
    }

    [Fact]
    public void Write_EveryValueTypeNestedArraysAndTensors_ReadsBackExactly()
    {
        using var dir = new TempDir();
        var meta = EveryValueType();
        meta.Set("general.alignment", GgufValue.FromUInt32(64));
        var w = new GgufWriter(meta);
        var f32 = new byte[4 * 3 * 2];
        for (int i = 0; i < f32.Length; i++) f32[i] = (byte)(i * 7);
        w.AddTensor("a", [3, 2], GgmlType.F32, f32);
        w.AddTensor("b", [64], GgmlType.Q8_0, s => { for (int i = 0; i < 68; i++) s.WriteByte((byte)i); });
        w.AddTensor("c", [], GgmlType.F16, new byte[] { 0x00, 0x3c });
        string path = dir.File("all.gguf");
        w.Write(path);

        using var f = GgufFile.Open(path);
        Assert.Equal(64, f.Alignment);
        Assert.Equal(meta.Keys, f.Metadata.Keys);
        foreach (var (key, value) in meta) Assert.True(value.Equals(f.Metadata[key]), key);
        Assert.Equal(ulong.MaxValue.ToString(), f.Metadata["t.u64"].ToString());
        Assert.Equal(-100, f.Metadata.GetInteger("t.i8"));
        Assert.Equal([0xff, 0xfe, 0x41], f.Metadata["t.bad_utf8"].AsUtf8());
        var nested = f.Metadata["t.a_nested"].AsNestedArrays()!;
        Assert.Equal(["x", "yz"], nested[1].AsStringArray()!);
        Assert.Equal(0.25, nested[2].AsNestedArrays()![0].AsArray<double>()![0]);
        Assert.Equal([0L, 64L, 192L], f.Tensors.Select(t => t.Offset));
        Assert.Equal(f32, f.Tensor("a").Span.ToArray());
        Assert.Equal(Enumerable.Range(0, 68).Select(i => (byte)i), f.Tensor("b").Span.ToArray());
        Assert.Empty(f.Tensor("c").Dimensions);
        Assert.Equal(1, f.Tensor("c").ElementCount);

        string again = dir.File("again.gguf");
        GgufWriter.FromFile(f).Write(again);
        Assert.Equal(File.ReadAllBytes(path), File.ReadAllBytes(again));
    }

    [Fact]
    public void Write_CallbackWritesTooFewBytes_ThrowsAndLeavesNoFile()
    {
        using var dir = new TempDir();
        var w = new GgufWriter();
        w.AddTensor("short", [32], GgmlType.F32, s => s.Write(new byte[100]));
        string path = dir.File("x.gguf");
        var ex = Assert.Throws<InvalidOperationException>(() => w.Write(path));
        Assert.Contains("'short'", ex.Message);
        Assert.Empty(Directory.EnumerateFileSystemEntries(dir.Path));
    }

    [Fact]
    public void Write_CallbackWritesTooManyBytes_ThrowsAndKeepsExistingFile()
    {
        using var dir = new TempDir();
        string path = dir.File("x.gguf");
        File.WriteAllText(path, "previous");
        var w = new GgufWriter();
        w.AddTensor("long", [32], GgmlType.F32, s => s.Write(new byte[129]));
        Assert.Throws<InvalidOperationException>(() => w.Write(path));
        Assert.Equal("previous", File.ReadAllText(path));
        Assert.Single(Directory.EnumerateFileSystemEntries(dir.Path));
    }

    [Fact]
    public void AddTensor_InvalidShapes_ThrowArgumentException()
    {
        var w = new GgufWriter();
        w.AddTensor("a", [32], GgmlType.F32, new byte[128]);
        Assert.Throws<ArgumentException>(() => w.AddTensor("a", [32], GgmlType.F32, new byte[128]));
        Assert.Throws<ArgumentException>(() => w.AddTensor("b", [33], GgmlType.Q4_0, new byte[18]));
        Assert.Throws<ArgumentException>(() => w.AddTensor("c", [1, 1, 1, 1, 1], GgmlType.F32, new byte[4]));
        Assert.Throws<ArgumentException>(() => w.AddTensor("d", [32], GgmlType.F32, new byte[127]));
        Assert.Throws<ArgumentException>(() => w.AddTensor("e", [32], (GgmlType)77, new byte[32]));
    }

    [Fact]
    public void Write_SourceFileClosedBeforeWrite_ThrowsAndLeavesNoFile()
    {
        using var dir = new TempDir();
        GgufWriter w;
        using (var f = GgufFile.Open(Path.Combine(SharedAssets.Prose15mGguf, "prose-15m-Q2_K.gguf"))) w = GgufWriter.FromFile(f);
        Assert.Throws<ObjectDisposedException>(() => w.Write(dir.File("late.gguf")));
        Assert.Empty(Directory.EnumerateFileSystemEntries(dir.Path));
    }
}
