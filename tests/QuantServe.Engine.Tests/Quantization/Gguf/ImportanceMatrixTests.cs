using System.Text;
using QuantServe.Engine.Formats.Gguf;
using QuantServe.Engine.Models;
using QuantServe.Engine.Quantization.Gguf;
using QuantServe.Engine.Tensors;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Quantization.Gguf;

public class ImportanceMatrixTests
{
    private static void WriteDat(string path, params (string Name, int Calls, float[] Sums)[] entries)
    {
        using var w = new BinaryWriter(File.Create(path));
        w.Write(entries.Length);
        foreach (var (name, calls, sums) in entries)
        {
            var bytes = Encoding.UTF8.GetBytes(name);
            w.Write(bytes.Length);
            w.Write(bytes);
            w.Write(calls);
            w.Write(sums.Length);
            foreach (var s in sums) w.Write(s);
        }
        w.Write(10); // llama-imatrix appends the last chunk count and the dataset name
        w.Write(0);
    }

    [Fact]
    public void Load_LegacyDat_DividesSumsByCallCount()
    {
        using var dir = new TempModelFolder();
        string path = dir.Path("imatrix.dat");
        WriteDat(path, ("blk.0.attn_q.weight", 4, [4f, 8f, 2f]), ("blk.0.ffn_down.weight", 0, [1f, 3f]));
        var m = ImportanceMatrix.Load(path);
        Assert.Equal(2, m.Count);
        Assert.Equal([1f, 2f, 0.5f], m.Find("blk.0.attn_q.weight")!);
        Assert.Equal([1f, 3f], m.Find("blk.0.ffn_down.weight")!);
        Assert.Null(m.Find("output.weight"));
    }

    [Fact]
    public void Load_GgufImatrix_DividesInSum2ByCounts()
    {
        using var dir = new TempModelFolder();
        string path = dir.Path("imatrix.gguf");
        var writer = new GgufWriter();
        writer.AddTensor("blk.0.attn_q.weight.in_sum2", [4, 1], GgmlType.F32, new ReadOnlyMemory<byte>(ToBytes([2f, 4f, 6f, 8f])));
        writer.AddTensor("blk.0.attn_q.weight.counts", [1, 1], GgmlType.F32, new ReadOnlyMemory<byte>(ToBytes([2f])));
        writer.Write(path);
        var m = ImportanceMatrix.Load(path);
        Assert.Equal([1f, 2f, 3f, 4f], m.Find("blk.0.attn_q.weight")!);
    }

    [Fact]
    public void Load_TruncatedOrNonFinite_ThrowsNamingTheFile()
    {
        using var dir = new TempModelFolder();
        string path = dir.Path("bad.dat");
        WriteDat(path, ("blk.0.attn_q.weight", 1, [1f, 2f, 3f]));
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..20]);
        var e = Assert.Throws<ModelLoadException>(() => ImportanceMatrix.Load(path));
        Assert.Contains("bad.dat", e.Message);
        Assert.Contains("truncated", e.Message);
        WriteDat(path, ("blk.0.attn_q.weight", 1, [1f, float.NaN]));
        Assert.Contains("non-finite", Assert.Throws<ModelLoadException>(() => ImportanceMatrix.Load(path)).Message);
    }

    private static byte[] ToBytes(float[] v)
    {
        var b = new byte[v.Length * 4];
        Buffer.BlockCopy(v, 0, b, 0, b.Length);
        return b;
    }
}
