using System.Numerics;
using System.Text;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;
using QuantServe.Engine.Quantization.Gguf;

namespace QuantServe.Engine.Quantization.Calibration;

/// <summary>
/// Accumulates llama.cpp's importance matrix while a model runs over calibration text: for each linear input, per column
/// j, <c>S_j = Σ_t x_t[j]²</c> over every token t that reached it, and the token count N. The importance weight is
/// <c>S_j / N</c>; matrices sharing an input (q/k/v, gate/up) share the statistics under each of their GGUF names.
/// Sums are kept in double so that long calibration runs lose no precision.
/// </summary>
public sealed class ImportanceMatrixCollector : IActivationObserver
{

    private readonly double[][][] _columns;
    private readonly long[][] _counts;

    /// <summary>Statistics for a model with <paramref name="config"/>'s shapes.</summary>
    public ImportanceMatrixCollector(ModelConfig config)
    {
        Config = config;

        _columns = new double[config.Layers][][];
        _counts = new long[config.Layers][];
        for (int l = 0; l < config.Layers; l++)
        {
            _columns[l] = [new double[config.Dim], new double[config.QDim], new double[config.Dim], new double[config.HiddenDim]];
            _counts[l] = new long[4];
        }
    }

    /// <summary>The model's hyper-parameters.</summary>
    public ModelConfig Config { get; }

    /// <summary>Calibration windows seen (llama.cpp's chunk count, written as <c>ncall</c>).</summary>
    public int Chunks { get; set; }

    /// <summary>Tokens that reached layer 0's attention input.</summary>
    public long Tokens => _counts.Length > 0 ? _counts[0][0] : 0;

    /// <inheritdoc />
    public void Observe(int layer, LinearInput input, ReadOnlySpan<float> rows, int tokens, int width)
    {
        var sums = _columns[layer][(int)input];
        if (sums.Length != width) throw new ArgumentException($"layer {layer} {input}: width {width}, expected {sums.Length}");
        for (int t = 0; t < tokens; t++) AddSquares(rows.Slice(t * width, width), sums);
        _counts[layer][(int)input] += tokens;
    }

    private static void AddSquares(ReadOnlySpan<float> x, double[] sums)
    {
        int j = 0;
        if (Vector.IsHardwareAccelerated && x.Length >= Vector<float>.Count)
        {
            int step = Vector<float>.Count;
            for (; j <= x.Length - step; j += step)
            {
                var v = new Vector<float>(x.Slice(j));
                Vector.Widen(v * v, out Vector<double> lo, out Vector<double> hi);
                var s = sums.AsSpan(j);
                (new Vector<double>(s) + lo).CopyTo(s);
                var s2 = sums.AsSpan(j + Vector<double>.Count);
                (new Vector<double>(s2) + hi).CopyTo(s2);
            }
        }
        for (; j < x.Length; j++) sums[j] += (double)x[j] * x[j];
    }

    /// <summary>Per GGUF tensor name, the column sums S_j and the token count N.</summary>
    public IEnumerable<(string Name, double[] Sums, long Count)> Entries()
    {
        for (int l = 0; l < Config.Layers; l++)
        {
            string p = $"blk.{l}.";
            var c = _columns[l];
            var n = _counts[l];
            yield return (p + "attn_q.weight", c[0], n[0]);
            yield return (p + "attn_k.weight", c[0], n[0]);
            yield return (p + "attn_v.weight", c[0], n[0]);
            yield return (p + "attn_output.weight", c[1], n[1]);
            yield return (p + "ffn_gate.weight", c[2], n[2]);
            yield return (p + "ffn_up.weight", c[2], n[2]);
            yield return (p + "ffn_down.weight", c[3], n[3]);
        }
    }

    /// <summary>The collected weights as an <see cref="ImportanceMatrix"/> (weight_j = S_j / N).</summary>
    public ImportanceMatrix ToImportanceMatrix(string source = "<calibration>")
    {
        var d = new Dictionary<string, float[]>(StringComparer.Ordinal);
        foreach (var (name, sums, count) in Entries())
            d[name] = sums.Select(s => (float)(count > 0 ? s / count : 1.0)).ToArray();
        return new ImportanceMatrix(d, source);
    }

    /// <summary>
    /// Writes llama-imatrix's legacy <c>.dat</c> layout: int32 entry count; per entry int32 name length, UTF-8 name, int32
    /// ncall, int32 nval, nval float32 values equal to <c>(S_j / N) · ncall</c> (readers divide by ncall); then int32 last
    /// chunk and the dataset name (int32 length, bytes). Columns never reached get weight 1, as llama.cpp does.
    /// </summary>
    public void WriteDat(string path, string dataset)
    {
        var entries = Entries().ToList();
        string tmp = path + ".tmp";
        using (var w = new BinaryWriter(File.Create(tmp), Encoding.UTF8))
        {
            int ncall = Math.Max(1, Chunks);
            w.Write(entries.Count);
            foreach (var (name, sums, count) in entries)
            {
                var bytes = Encoding.UTF8.GetBytes(name);
                w.Write(bytes.Length);
                w.Write(bytes);
                w.Write(ncall);
                w.Write(sums.Length);
                foreach (double s in sums) w.Write((float)((count > 0 ? s / count : 1.0) * ncall));
            }
            w.Write(Chunks);
            var ds = Encoding.UTF8.GetBytes(dataset);
            w.Write(ds.Length);
            w.Write(ds);
        }
        File.Move(tmp, path, overwrite: true);
    }
}
