using System.Runtime.InteropServices;
using FsCheck;
using FsCheck.Fluent;
using QuantServe.Engine.Formats.Safetensors;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Formats.Safetensors;

public class SafetensorsWriterTests
{
    [Fact]
    public void Write_MixedDTypes_RoundTripsBytesShapesAndMetadata()
    {
        using var temp = new TempModelFolder();
        string path = temp.Path("packed.safetensors");
        var rng = new Random(7);
        byte[] Bytes(int n) { var b = new byte[n]; rng.NextBytes(b); return b; }
        byte[] u8 = Bytes(3 * 5), f16 = Bytes(2 * 7 * 2), i32 = Bytes(4 * 3), i64 = Bytes(8 * 2);
        float[] f32 = [1.5f, -2.25f, float.Epsilon, 3e38f];

        var writer = new SafetensorsWriter();
        writer.Metadata["format"] = "quantserve";
        writer.Metadata["quant"] = "int4-g128";
        writer.Add("w.qweight", SafetensorsDType.U8, [3, 5], u8);
        writer.Add("w.scales", SafetensorsDType.F16, [2, 7], f16);
        writer.Add("norm", [4], f32);
        writer.Add("w.zeros", SafetensorsDType.I32, [3], i32);
        writer.Add("step", SafetensorsDType.I64, [2], s => s.Write(i64));
        writer.Add("empty", SafetensorsDType.F32, [0, 4], ReadOnlyMemory<byte>.Empty);
        writer.Write(path);

        using var file = SafetensorsFile.Open(path);
        Assert.Equal("quantserve", file.Metadata["format"]);
        Assert.Equal("int4-g128", file.Metadata["quant"]);
        Assert.Equal(6, file.Tensors.Count);
        Assert.Equal(u8, file.Find("w.qweight")!.Bytes.ToArray());
        Assert.Equal([3L, 5L], file.Find("w.qweight")!.Shape);
        Assert.Equal(f16, file.Find("w.scales")!.Bytes.ToArray());
        Assert.Equal(SafetensorsDType.F16, file.Find("w.scales")!.DType);
        Assert.Equal(f32, MemoryMarshal.Cast<byte, float>(file.Find("norm")!.Bytes).ToArray());
        Assert.Equal(i32, file.Find("w.zeros")!.Bytes.ToArray());
        Assert.Equal(i64, file.Find("step")!.Bytes.ToArray());
        Assert.Equal(0, file.Find("empty")!.ByteLength);
        Assert.Equal([0L, 4L], file.Find("empty")!.Shape);
    }

    [Fact]
    public void Write_AnyTensors_HeaderPaddedTo8AndEachTensorAlignedToItsElementSize()
    {
        using var temp = new TempModelFolder();
        string path = temp.Path("aligned.safetensors");
        var writer = new SafetensorsWriter();
        writer.Add("a", SafetensorsDType.U8, [3], new byte[3]);
        writer.Add("b", SafetensorsDType.F64, [1], new byte[8]);
        writer.Add("c", SafetensorsDType.F16, [1], new byte[2]);
        writer.Add("d", SafetensorsDType.F32, [3], new byte[12]);
        writer.Write(path);

        using var file = SafetensorsFile.Open(path);
        Assert.Equal(0, file.DataStart % 8);
        foreach (var t in file.Tensors)
            Assert.True((file.DataStart + t.Begin) % t.DType.ElementSize() == 0, $"{t} starts at {t.Begin}");
    }

    [Fact]
    public void Write_ExistingTarget_ReplacesItAndLeavesNoTemporaryFile()
    {
        using var temp = new TempModelFolder();
        string path = temp.Path("model.safetensors");
        File.WriteAllText(path, "old contents");
        var writer = new SafetensorsWriter();
        writer.Add("x", [2], new float[] { 1, 2 });
        writer.Write(path);

        Assert.Equal(["model.safetensors"], Directory.GetFiles(temp.Dir).Select(Path.GetFileName));
        using var file = SafetensorsFile.Open(path);
        Assert.Equal([1f, 2f], MemoryMarshal.Cast<byte, float>(file.Find("x")!.Bytes).ToArray());
    }

    [Fact]
    public void Write_CallbackWritesWrongLength_ThrowsAndKeepsOldFile()
    {
        using var temp = new TempModelFolder();
        string path = temp.Path("model.safetensors");
        File.WriteAllText(path, "old contents");
        var writer = new SafetensorsWriter();
        writer.Add("x", SafetensorsDType.F32, [4], s => s.Write(new byte[12]));

        var e = Assert.Throws<InvalidOperationException>(() => writer.Write(path));
        Assert.Contains("'x'", e.Message);
        Assert.Equal("old contents", File.ReadAllText(path));
        Assert.Single(Directory.GetFiles(temp.Dir));
    }

    [Fact]
    public void Add_DataLengthDisagreesWithShape_Throws()
    {
        var writer = new SafetensorsWriter();
        var e = Assert.Throws<ArgumentException>(() => writer.Add("x", SafetensorsDType.F16, [2, 3], new byte[10]));
        Assert.Contains("needs 12 bytes", e.Message);
    }

    [Fact]
    public void Add_DuplicateName_Throws()
    {
        var writer = new SafetensorsWriter();
        writer.Add("x", [1], new float[1]);
        Assert.Throws<ArgumentException>(() => writer.Add("x", [1], new float[1]));
        Assert.Throws<ArgumentException>(() => writer.Add("__metadata__", [1], new float[1]));
    }

    [Fact]
    public void Write_RandomTensorSets_ReaderReturnsWhatWasWritten()
    {
        using var temp = new TempModelFolder();
        var dtypes = Enum.GetValues<SafetensorsDType>();
        var tensorGen =
            from dtype in Gen.Elements(dtypes)
            from rank in Gen.Choose(0, 3)
            from dims in Gen.ArrayOf(Gen.Choose(0, 6), rank)
            from seed in Gen.Choose(0, int.MaxValue)
            select (dtype, dims: dims.Select(d => (long)d).ToArray(), seed);
        var setGen = Gen.ListOf(tensorGen).Select(l => l.Take(12).ToList());
        int run = 0;

        Prop.ForAll(setGen.ToArbitrary(), tensors =>
        {
            string path = temp.Path($"prop{run++}.safetensors");
            var writer = new SafetensorsWriter();
            var expected = new Dictionary<string, (SafetensorsDType, long[], byte[])>();
            for (int i = 0; i < tensors.Count; i++)
            {
                var (dtype, dims, seed) = tensors[i];
                var data = new byte[dims.Aggregate((long)dtype.ElementSize(), (a, d) => a * d)];
                new Random(seed).NextBytes(data);
                writer.Add($"t{i}", dtype, dims, data);
                expected[$"t{i}"] = (dtype, dims, data);
            }
            writer.Write(path);
            using var file = SafetensorsFile.Open(path);
            bool ok = file.Tensors.Count == expected.Count && expected.All(p =>
                file.Find(p.Key) is { } t && t.DType == p.Value.Item1 && t.Shape.SequenceEqual(p.Value.Item2)
                && t.Bytes.SequenceEqual(p.Value.Item3));
            file.Dispose();
            File.Delete(path);
            return ok;
        }).QuickCheckThrowOnFailure();
    }

    [Fact]
    public unsafe void Add_MappedPointer_WritesTheBytesItPointsAt()
    {
        using var temp = new TempModelFolder();
        using var source = SafetensorsCheckpoint.Open(SharedAssets.Prose15m);
        var embedding = source.Find("model.embed_tokens.weight")!;
        var writer = new SafetensorsWriter();
        writer.Add("copy", embedding.DType, embedding.Shape, embedding.Pointer);
        writer.Write(temp.Path("copy.safetensors"));
        using var copy = SafetensorsFile.Open(temp.Path("copy.safetensors"));
        Assert.True(copy.Find("copy")!.Bytes.SequenceEqual(embedding.Bytes));
    }

    [Fact]
    public void Write_Prose15mShardTensors_RewrittenFileHoldsIdenticalBytes()
    {
        using var temp = new TempModelFolder();
        using var source = SafetensorsFile.Open(SharedAssets.Path("models", "prose-15m", "model-00003-of-00003.safetensors"));
        var writer = new SafetensorsWriter();
        foreach (var (k, v) in source.Metadata) writer.Metadata[k] = v;
        foreach (var t in source.Tensors)
        {
            var info = t;
            writer.Add(t.Name, t.DType, t.Shape, s => s.Write(info.Bytes));
        }
        string path = temp.Path("copy.safetensors");
        writer.Write(path);

        using var copy = SafetensorsFile.Open(path);
        Assert.Equal(source.Metadata, copy.Metadata);
        foreach (var t in source.Tensors)
            Assert.True(t.Bytes.SequenceEqual(copy.Find(t.Name)!.Bytes), t.Name);
        Assert.Equal(0, copy.DataStart % 8);
    }

    [Fact]
    public void WriteCheckpoint_Prose15mTensorsInSmallShards_ReopensAsShardedCheckpointWithSameBytes()
    {
        using var temp = new TempModelFolder();
        using var source = SafetensorsCheckpoint.Open(SharedAssets.Prose15m);
        var writer = new SafetensorsWriter();
        foreach (var t in source.Tensors.Values)
        {
            var info = t;
            writer.Add(t.Name, t.DType, t.Shape, s => s.Write(info.Bytes));
        }
        var written = writer.WriteCheckpoint(temp.Dir, maxShardBytes: 8_000_000);

        // The 16.4 MB embedding (first by name) overflows the limit on its own and takes a shard by itself;
        // the 12.6 MB of layers and final norm fill two more.
        Assert.Equal(SafetensorsCheckpoint.IndexFileName, Path.GetFileName(written[^1]));
        Assert.Equal("model-00001-of-00003.safetensors", Path.GetFileName(written[0]));
        Assert.Equal(4, written.Count);
        using var copy = SafetensorsCheckpoint.Open(temp.Dir);
        Assert.Equal(3, copy.Files.Count);
        Assert.Equal(source.Tensors.Count, copy.Tensors.Count);
        foreach (var t in source.Tensors.Values)
            Assert.True(t.Bytes.SequenceEqual(copy.Find(t.Name)!.Bytes), t.Name);
        Assert.All(copy.Files, f => Assert.True(f.Mapped.Length <= 8_000_000 || f.Tensors.Count == 1));
        Assert.Contains("\"total_size\": 28975616", File.ReadAllText(written[^1]));
    }

    [Fact]
    public void WriteCheckpoint_SmallModel_WritesSingleFileWithoutIndex()
    {
        using var temp = new TempModelFolder();
        var writer = new SafetensorsWriter();
        writer.Add("a", [3], new float[] { 1, 2, 3 });
        writer.Add("b", SafetensorsDType.U8, [5], new byte[5]);
        var written = writer.WriteCheckpoint(temp.Dir);
        Assert.Equal([Path.Combine(temp.Dir, SafetensorsCheckpoint.SingleFileName)], written);
        using var copy = SafetensorsCheckpoint.Open(temp.Dir);
        Assert.Equal(2, copy.Tensors.Count);
    }
}
