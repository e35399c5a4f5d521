using QuantServe.Engine.Formats.Gguf;
using QuantServe.Engine.Quantization.Formats;
using QuantServe.Engine.Tensors;

namespace QuantServe.Api.Quantization;

/// <summary>
/// Requantizes a GGUF file's matrices to one ggml type (round-to-nearest block quantization through the engine's
/// formats), copying metadata, norms and matrices whose width the type cannot hold. Rows are quantized in parallel;
/// one tensor at a time is held in memory.
/// </summary>
public static class GgufTypeQuantizer
{
    /// <summary>The ggml types QuantServe can quantize to, by lower-case name.</summary>
    public static IReadOnlyDictionary<string, GgmlType> Methods { get; } = BuildMethods();

    private static Dictionary<string, GgmlType> BuildMethods()
    {
        var map = new Dictionary<string, GgmlType>(StringComparer.OrdinalIgnoreCase);
        foreach (var t in Enum.GetValues<GgmlType>())
            if (TensorFormats.ForGgml(t) is LegacyQuantFormat or KQuantFormat)
                map[t.ToString().ToLowerInvariant()] = t;
        return map;
    }

    /// <summary>Writes <paramref name="source"/> quantized to <paramref name="type"/> into <paramref name="destination"/>,
    /// reporting the fraction of weights done; returns the per-tensor types written.</summary>
    public static unsafe IReadOnlyDictionary<string, string> Quantize(string source, string destination, GgmlType type,
        Action<double> progress, CancellationToken cancellation)
    {
        var target = TensorFormats.ForGgml(type) ?? throw new ArgumentException($"no format for {type}", nameof(type));
        using var file = GgufFile.Open(source);
        var meta = file.Metadata.Clone(destination);
        var writer = new GgufWriter(meta);
        var types = new Dictionary<string, string>(StringComparer.Ordinal);
        long total = file.Tensors.Where(IsMatrix).Sum(t => t.ElementCount), done = 0;
        foreach (var t in file.Tensors)
        {
            if (!IsMatrix(t) || !target.SupportsWidth((int)t.Cols) || TensorFormats.ForGgml(t.Type) is null)
            {
                writer.AddTensor(t);
                types[t.Name] = t.Type.ToString();
                continue;
            }
            var info = t;
            types[t.Name] = type.ToString();
            writer.AddTensor(t.Name, t.Dimensions, type, stream =>
            {
                cancellation.ThrowIfCancellationRequested();
                var w = file.Matrix(info.Name);
                int rows = w.Rows, cols = w.Cols;
                long rowBytes = target.RowBytes(cols);
                var output = new byte[rowBytes * rows];
                Parallel.For(0, rows, new ParallelOptions { CancellationToken = cancellation }, () => new float[cols], (r, _, buf) =>
                {
                    w.Format.DequantizeRow(w, r, buf);
                    var dst = output.AsSpan((int)(r * rowBytes), (int)rowBytes);
                    if (target is KQuantFormat k) k.QuantizeRow(buf, dst);
                    else ((LegacyQuantFormat)target).QuantizeRow(buf, dst);
                    return buf;
                }, _ => { });
                stream.Write(output);
                done += info.ElementCount;
                progress((double)done / Math.Max(1, total));
            });
        }
        using (var fs = new FileStream(destination, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            writer.WriteTo(fs);
            fs.Flush(flushToDisk: true);
        }
        return types;
    }

    private static bool IsMatrix(GgufTensorInfo t) => t.Dimensions.Count == 2 && t.Cols <= int.MaxValue && t.Rows <= int.MaxValue;
}
