using System.Buffers.Binary;
using System.Text;
using QuantServe.Engine.Formats.HuggingFace;
using QuantServe.Engine.Formats.Safetensors;
using QuantServe.Engine.Models;
using Xunit.Abstractions;

namespace QuantServe.Engine.Tests.Fuzzing;

/// <summary>
/// Mutation fuzzing of the safetensors readers over prose-15m's real shards: the smallest shard's header JSON rewritten
/// (dtype, shape, data_offsets, metadata values; header length kept consistent or not) or its bytes damaged, then every
/// tensor it accepts is read; and the shard index rewritten, then the whole sharded checkpoint opened.
/// </summary>
public class SafetensorsFuzzTests(ITestOutputHelper output)
{
    private const string Shard = "model-00003-of-00003.safetensors";

    [Fact]
    public void Open_MutatedShard_OpensOrRejectsCleanly() => ShardCases(FuzzSettings.Cases(800));

    [Fact]
    public void Open_MutatedShardIndex_OpensOrRejectsCleanly() => IndexCases(FuzzSettings.Cases(300));

    [Fact, Trait("Category", "Slow")]
    public void Open_MutatedShardTenfold_OpensOrRejectsCleanly() => ShardCases(FuzzSettings.Cases(800, 10));

    [Fact, Trait("Category", "Slow")]
    public void Open_MutatedShardIndexTenfold_OpensOrRejectsCleanly() => IndexCases(FuzzSettings.Cases(300, 10));

    private void ShardCases(int cases)
    {
        var original = File.ReadAllBytes(Path.Combine(HfFuzzCorpus.Folder, Shard));
        int headerLength = (int)BinaryPrimitives.ReadUInt64LittleEndian(original);
        string header = Encoding.UTF8.GetString(original, 8, headerLength);
        FieldSpot[] fields = [new(0, 8, "header_length"), new(0, 4, "header_length.low"), new(4, 4, "header_length.high")];
        new FuzzRun("safetensors", output).Run(cases, c =>
        {
            byte[] bytes;
            if (c.Rng.Next(3) != 0)
            {
                var json = Encoding.UTF8.GetBytes(JsonMutator.Mutate(header, c.Rng, c.Log));
                ulong length = (ulong)json.Length;
                if (c.Rng.Next(5) == 0)
                {
                    length = (ulong)((long)length + c.Rng.Next(-16, 17));
                    c.Log.Add($"header length {json.Length} written as {length}");
                }
                bytes = new byte[8 + json.Length + original.Length - 8 - headerLength];
                BinaryPrimitives.WriteUInt64LittleEndian(bytes, length);
                json.CopyTo(bytes, 8);
                original.AsSpan(8 + headerLength).CopyTo(bytes.AsSpan(8 + json.Length));
                if (c.Rng.Next(4) == 0) bytes = c.Mutator().Mutate(bytes, 8 + json.Length, fields, maxMutations: 1);
            }
            else bytes = c.Mutator().Mutate(original, 8 + headerLength, fields);
            string path = c.Path(Shard);
            File.WriteAllBytes(path, bytes);
            c.MustName = path;
            return () => OpenAndRead(path);
        });
    }

    private static unsafe void OpenAndRead(string path)
    {
        using var file = SafetensorsFile.Open(path);
        byte* start = file.Mapped.Pointer;
        foreach (var t in file.Tensors)
        {
            Assert.True(t.Pointer >= start && t.Pointer + t.ByteLength <= start + file.Mapped.Length, $"tensor {t.Name} escapes the file");
            _ = t.Bytes.Length;
            if (t.Shape.Count == 2 && t.DType.IsFloatWeight() && t.Shape[0] > 0 && t.Shape[1] > 0 && t.Shape[1] <= int.MaxValue)
            {
                var m = HuggingFaceModelLoader.AsMatrix(t);
                var row = new float[m.Cols];
                m.DequantizeRow(m.Rows - 1, row);
            }
            else if (t.DType.IsFloatWeight() && t.ElementCount < 1 << 20)
                _ = HuggingFaceModelLoader.ToFloats(t);
        }
    }

    private void IndexCases(int cases)
    {
        string index = HfFuzzCorpus.Text(SafetensorsCheckpoint.IndexFileName);
        new FuzzRun("safetensors-index", output).Run(cases, c =>
        {
            foreach (var f in Directory.EnumerateFiles(HfFuzzCorpus.Folder, "*.safetensors"))
                File.CreateSymbolicLink(c.Path(Path.GetFileName(f)), f);
            string text = JsonMutator.Mutate(index, c.Rng, c.Log);
            var bytes = Encoding.UTF8.GetBytes(text);
            if (c.Rng.Next(4) == 0) bytes = c.Mutator().Mutate(bytes, bytes.Length, [], maxMutations: 1);
            File.WriteAllBytes(c.Path(SafetensorsCheckpoint.IndexFileName), bytes);
            c.MustName = c.Dir;
            return () =>
            {
                using var checkpoint = SafetensorsCheckpoint.Open(c.Dir);
                Assert.NotEmpty(checkpoint.Tensors);
            };
        });
    }
}
