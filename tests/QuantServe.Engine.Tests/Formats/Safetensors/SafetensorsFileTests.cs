using System.Buffers.Binary;
using QuantServe.Engine.Formats.Safetensors;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Formats.Safetensors;

public class SafetensorsFileTests
{
    private const string Shard3 = "model-00003-of-00003.safetensors";

    [Fact]
    public void Open_Prose15mShard_ReadsHeaderAndMetadata()
    {
        using var file = SafetensorsFile.Open(SharedAssets.Path("models", "prose-15m", Shard3));
        Assert.Equal(8 + 520, file.DataStart);
        Assert.Equal("pt", file.Metadata["format"]);
        Assert.Equal(5, file.Tensors.Count);
        var down = file.Find("model.layers.7.mlp.down_proj.weight")!;
        Assert.Equal(SafetensorsDType.F16, down.DType);
        Assert.Equal([256L, 768L], down.Shape);
        Assert.Equal(512, down.Begin);
        Assert.Equal(512 + 256 * 768 * 2, down.End);
        Assert.Equal(file.Mapped.Length - file.DataStart, file.Tensors.Max(t => t.End));
    }

    [Fact]
    public void Open_Prose15mNormTensor_BytesAreFiniteHalfs()
    {
        using var file = SafetensorsFile.Open(SharedAssets.Path("models", "prose-15m", Shard3));
        var norm = file.Find("model.norm.weight")!;
        var halves = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, Half>(norm.Bytes);
        Assert.Equal(256, halves.Length);
        foreach (var h in halves) Assert.True(Half.IsFinite(h) && h != Half.Zero);
    }

    private static ModelLoadException OpenDamaged(Action<TempModelFolder> damage, out string path)
    {
        using var temp = new TempModelFolder(SharedAssets.Prose15m);
        damage(temp);
        path = temp.Path(Shard3);
        return Assert.Throws<ModelLoadException>(() => SafetensorsFile.Open(temp.Path(Shard3)));
    }

    private static void AssertNamesFile(ModelLoadException e, string path, params string[] fragments)
    {
        Assert.Equal(Path.GetFullPath(path), e.File);
        Assert.StartsWith(Path.GetFullPath(path), e.Message);
        foreach (var f in fragments) Assert.Contains(f, e.Problem);
    }

    [Fact]
    public void Open_TruncatedShard_ThrowsNamingTensorBeyondEnd()
    {
        var e = OpenDamaged(t =>
        {
            string p = t.Own(Shard3);
            using var s = new FileStream(p, FileMode.Open);
            s.SetLength(s.Length - 100);
        }, out var path);
        AssertNamesFile(e, path, "model.norm.weight", "beyond the end of the data section", "truncated");
    }

    [Fact]
    public void Open_FileShorterThanLengthField_ThrowsTruncated()
    {
        var e = OpenDamaged(t => File.WriteAllBytes(t.Own(Shard3), [1, 2, 3]), out var path);
        AssertNamesFile(e, path, "truncated", "3 bytes");
    }

    [Fact]
    public void Open_HeaderLengthBeyondFile_Throws()
    {
        var e = OpenDamaged(t => PatchLength(t.Own(Shard3), 5_000_000), out var path);
        AssertNamesFile(e, path, "header length 5000000", "beyond the end of the file");
    }

    [Fact]
    public void Open_HeaderLengthOver100MB_ThrowsWithoutReadingIt()
    {
        var e = OpenDamaged(t => PatchLength(t.Own(Shard3), ulong.MaxValue - 3), out var path);
        AssertNamesFile(e, path, "exceeds the 100 MB limit");
    }

    [Fact]
    public void Open_MalformedJsonHeader_Throws()
    {
        var e = OpenDamaged(t => t.EditSafetensorsHeader(Shard3, h => h.Replace("\"shape\":", "\"shape\"")), out var path);
        AssertNamesFile(e, path, "malformed JSON header");
    }

    [Fact]
    public void Open_HeaderNotStartingWithBrace_Throws()
    {
        var e = OpenDamaged(t => t.EditSafetensorsHeader(Shard3, h => "[" + h[1..]), out var path);
        AssertNamesFile(e, path, "malformed JSON header", "'{'");
    }

    [Fact]
    public void Open_DataOffsetsBeyondFile_Throws()
    {
        var e = OpenDamaged(t => t.EditSafetensorsHeader(Shard3,
            h => h.Replace("\"data_offsets\":[787456,787968]", "\"data_offsets\":[90787456,90787968]")), out var path);
        AssertNamesFile(e, path, "model.norm.weight", "[90787456, 90787968)", "beyond the end");
    }

    [Fact]
    public void Open_ShapeDisagreesWithOffsets_ThrowsNamingBoth()
    {
        var e = OpenDamaged(t => t.EditSafetensorsHeader(Shard3,
            h => h.Replace("\"shape\":[256],\"data_offsets\":[787456", "\"shape\":[257],\"data_offsets\":[787456")), out var path);
        AssertNamesFile(e, path, "model.norm.weight", "[257]", "needs 514 bytes", "span 512");
    }

    [Fact]
    public void Open_OverlappingTensors_Throws()
    {
        // Point the final norm at the first 512 bytes, which the layer-7 input norm already holds.
        var e = OpenDamaged(t => t.EditSafetensorsHeader(Shard3,
            h => h.Replace("\"data_offsets\":[787456,787968]", "\"data_offsets\":[0,512]")), out var path);
        AssertNamesFile(e, path, "overlap", "model.norm.weight");
    }

    [Fact]
    public void Open_UnknownDType_ThrowsNamingTensor()
    {
        var e = OpenDamaged(t => t.EditSafetensorsHeader(Shard3,
            h => h.Replace("\"dtype\":\"F16\",\"shape\":[256],\"data_offsets\":[787456", "\"dtype\":\"Q4\",\"shape\":[256],\"data_offsets\":[787456")), out var path);
        AssertNamesFile(e, path, "model.norm.weight", "unsupported dtype \"Q4\"");
    }

    [Fact]
    public void Open_EmptyFile_ThrowsTruncated()
    {
        var e = OpenDamaged(t => File.WriteAllBytes(t.Own(Shard3), []), out var path);
        AssertNamesFile(e, path, "truncated", "0 bytes");
    }

    [Fact]
    public void Open_MissingFile_ThrowsModelLoadException()
    {
        using var temp = new TempModelFolder();
        var e = Assert.Throws<ModelLoadException>(() => SafetensorsFile.Open(temp.Path("absent.safetensors")));
        Assert.Contains("absent.safetensors", e.Message);
    }

    [Theory]
    [InlineData("F16", SafetensorsDType.F16, 2)]
    [InlineData("BF16", SafetensorsDType.BF16, 2)]
    [InlineData("F32", SafetensorsDType.F32, 4)]
    [InlineData("I8", SafetensorsDType.I8, 1)]
    [InlineData("U8", SafetensorsDType.U8, 1)]
    [InlineData("I32", SafetensorsDType.I32, 4)]
    [InlineData("I64", SafetensorsDType.I64, 8)]
    [InlineData("F64", SafetensorsDType.F64, 8)]
    public void Parse_KnownDTypeName_GivesTypeAndSize(string name, SafetensorsDType expected, int size)
    {
        Assert.Equal(expected, SafetensorsDTypes.Parse(name));
        Assert.Equal(size, expected.ElementSize());
    }

    [Theory]
    [InlineData("f16")]
    [InlineData("7")]
    [InlineData("F16,F32")]
    [InlineData("")]
    public void Parse_UnknownDTypeName_GivesNull(string name) => Assert.Null(SafetensorsDTypes.Parse(name));

    private static void PatchLength(string path, ulong value)
    {
        using var s = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, value);
        s.Write(b);
    }

    [Fact]
    public void Open_RandomlyCorruptedHeader_SucceedsOrThrowsModelLoadException()
    {
        using var temp = new TempModelFolder(SharedAssets.Prose15m);
        string path = temp.Own(Shard3);
        byte[] original = File.ReadAllBytes(path);
        var rng = new Random(20261124);
        int rejected = 0;
        for (int trial = 0; trial < 300; trial++)
        {
            byte[] bytes = (byte[])original.Clone();
            int flips = rng.Next(1, 4);
            for (int f = 0; f < flips; f++)
            {
                // Mostly the JSON header, sometimes the length field; digits and structure characters matter most.
                int at = rng.Next(10) == 0 ? rng.Next(8) : 8 + rng.Next(520);
                bytes[at] = rng.Next(3) switch
                {
                    0 => (byte)rng.Next(256),
                    1 => (byte)"0123456789"[rng.Next(10)],
                    _ => (byte)"{}[]\",: -"[rng.Next(9)],
                };
            }
            File.WriteAllBytes(path, bytes);
            try
            {
                using var file = SafetensorsFile.Open(path);
                Assert.All(file.Tensors, t => Assert.True(t.End <= file.Mapped.Length - file.DataStart));
            }
            catch (ModelLoadException e)
            {
                Assert.Equal(path, e.File);
                rejected++;
            }
        }
        Assert.True(rejected > 100, $"only {rejected} of 300 corruptions were rejected");
    }
}
