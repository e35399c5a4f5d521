using System.Buffers.Binary;
using System.Text;
using QuantServe.Engine.Formats.Gguf;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Quantization.Gguf;

/// <summary>
/// Per-tensor, per-column importance weights (llama.cpp's imatrix): for tensor <c>name</c> with rows of <c>n</c>
/// columns, <c>n</c> non-negative weights, the mean of the squared activation each column met during calibration.
/// Reads llama-imatrix's legacy <c>.dat</c> files (int32 entry count; per entry: int32 name length, name, int32 ncall,
/// int32 nval, nval float32 sums — weight = sum / ncall) and its GGUF files (<c>NAME.in_sum2</c> and <c>NAME.counts</c>
/// tensors — weight = in_sum2 / count).
/// </summary>
public sealed class ImportanceMatrix
{
    private readonly Dictionary<string, float[]> _weights;

    /// <summary>Wraps weights by GGUF tensor name; every value must be finite.</summary>
    public ImportanceMatrix(IReadOnlyDictionary<string, float[]> weights, string source = "<imatrix>")
    {
        _weights = new Dictionary<string, float[]>(StringComparer.Ordinal);
        foreach (var (name, w) in weights)
        {
            if (w.Any(v => !float.IsFinite(v)))
                throw new ModelLoadException(source, $"importance weights of '{name}' contain a non-finite value");
            _weights[name] = w;
        }
        Source = source;
    }

    /// <summary>Where the weights came from.</summary>
    public string Source { get; }

    /// <summary>Number of tensors with weights.</summary>
    public int Count => _weights.Count;

    /// <summary>The weights of tensor <paramref name="name"/>, or null.</summary>
    public float[]? Find(string name) => _weights.GetValueOrDefault(name);

    /// <summary>Loads a legacy <c>.dat</c> or a GGUF imatrix file.</summary>
    public static ImportanceMatrix Load(string path)
    {
        if (!File.Exists(path)) throw new ModelLoadException(path, "no such importance matrix file");
        using (var probe = File.OpenRead(path))
        {
            Span<byte> magic = stackalloc byte[4];
            if (probe.Read(magic) == 4 && BinaryPrimitives.ReadUInt32LittleEndian(magic) == GgufFile.Magic)
            {
                probe.Dispose();
                return LoadGguf(path);
            }
        }
        return LoadDat(path);
    }

    private static ImportanceMatrix LoadDat(string path)
    {
        var w = new Dictionary<string, float[]>(StringComparer.Ordinal);
        using var r = new BinaryReader(File.OpenRead(path), Encoding.UTF8);
        try
        {
            int entries = r.ReadInt32();
            if (entries <= 0 || entries > 1 << 20) throw new ModelLoadException(path, $"implausible entry count {entries}: not an imatrix file");
            for (int e = 0; e < entries; e++)
            {
                int len = r.ReadInt32();
                if (len <= 0 || len > 4096) throw new ModelLoadException(path, $"entry {e}: implausible name length {len}");
                string name = Encoding.UTF8.GetString(r.ReadBytes(len));
                int ncall = r.ReadInt32();
                int nval = r.ReadInt32();
                if (nval <= 0 || nval > 1 << 26) throw new ModelLoadException(path, $"entry '{name}': implausible value count {nval}");
                var v = new float[nval];
                for (int i = 0; i < nval; i++) v[i] = r.ReadSingle();
                if (ncall > 0) for (int i = 0; i < nval; i++) v[i] /= ncall;
                w[name] = v;
            }
        }
        catch (EndOfStreamException)
        {
            throw new ModelLoadException(path, "the importance matrix file is truncated");
        }
        return new ImportanceMatrix(w, path);
    }

    private static unsafe ImportanceMatrix LoadGguf(string path)
    {
        using var file = GgufFile.Open(path);
        var w = new Dictionary<string, float[]>(StringComparer.Ordinal);
        foreach (var t in file.Tensors)
        {
            if (!t.Name.EndsWith(".in_sum2", StringComparison.Ordinal)) continue;
            string name = t.Name[..^".in_sum2".Length];
            var counts = file.FindTensor(name + ".counts")
                ?? throw new ModelLoadException(path, $"'{t.Name}' has no matching '{name}.counts' tensor");
            if (t.Type != GgmlType.F32 || counts.Type != GgmlType.F32)
                throw new ModelLoadException(path, $"imatrix tensors of '{name}' must be F32");
            // Mixture-of-experts tensors carry one row per expert; dense models have one row.
            int n = checked((int)t.ElementCount);
            var sums = new ReadOnlySpan<float>(t.Data, n);
            var cnt = new ReadOnlySpan<float>(counts.Data, checked((int)counts.ElementCount));
            int cols = checked((int)t.Cols);
            var v = new float[n];
            for (int i = 0; i < n; i++)
            {
                float c = cnt[Math.Min(i / cols, cnt.Length - 1)];
                v[i] = c > 0 ? sums[i] / c : sums[i];
            }
            w[name] = v;
        }
        if (w.Count == 0) throw new ModelLoadException(path, "a GGUF file without any '*.in_sum2' tensor is not an importance matrix");
        return new ImportanceMatrix(w, path);
    }
}
