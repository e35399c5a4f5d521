using System.Buffers;
using System.Diagnostics;
using System.Runtime.InteropServices;
using QuantServe.Engine.Formats.Gguf;
using QuantServe.Engine.Models;
using QuantServe.Engine.Quantization.Presets;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Quantization.Gguf;

/// <summary>
/// Quantizes any loadable model (GGUF, Hugging Face folder, llama2.c checkpoint) into a GGUF file llama.cpp loads, with
/// llama-quantize's per-tensor type choice (<see cref="QuantizationPlan"/>). Tensors are produced one at a time while the
/// file is written, in chunks of rows quantized in parallel, so memory stays at one chunk per tensor; the file appears
/// atomically (temporary file + rename) and a failure or cancellation leaves nothing behind. With
/// <see cref="QuantizeOptions.Accelerator"/> the k-quant types it supports are searched there (a GPU), a chunk of rows at a
/// time, with output identical to the CPU's.
/// </summary>
public static class GgufQuantizer
{
    /// <summary>Rows are quantized in chunks of about this many elements (bounds memory per tensor).</summary>
    private const long ChunkElements = 1 << 22;

    /// <summary>Loads <paramref name="input"/>, quantizes it and writes <paramref name="output"/>.</summary>
    public static QuantizeResult Quantize(string input, string output, QuantizeOptions options, CancellationToken cancellation = default)
    {
        GgufMetadata? metadata = null;
        if (ModelLoader.DetectFormat(input) == "gguf")
        {
            using var file = GgufFile.Open(input);
            metadata = file.Metadata.Clone(input);
        }
        using var model = ModelLoader.Load(input);
        return Quantize(model, metadata, output, options, cancellation);
    }

    /// <summary>The per-tensor plan for <paramref name="model"/> without writing anything.</summary>
    public static IReadOnlyList<PlannedTensor> Plan(LoadedModel model, QuantizeOptions options) =>
        Plan(model.Config, Sources(model), options);

    /// <summary>
    /// Quantizes <paramref name="model"/> into <paramref name="output"/>. <paramref name="sourceMetadata"/> (the source
    /// GGUF's key/values) is copied when given; otherwise the metadata is built from the model's config and tokenizer.
    /// </summary>
    public static QuantizeResult Quantize(LoadedModel model, GgufMetadata? sourceMetadata, string output, QuantizeOptions options,
        CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Threads <= 0) throw new ArgumentOutOfRangeException(nameof(options), $"threads must be positive, got {options.Threads}");
        var clock = Stopwatch.StartNew();
        var sources = Sources(model);
        var plan = Plan(model.Config, sources, options);
        var byName = sources.ToDictionary(s => s.Name, StringComparer.Ordinal);
        cancellation.ThrowIfCancellationRequested();

        var writer = new GgufWriter(Metadata(model, sourceMetadata, options));
        long total = Math.Max(1, plan.Sum(p => p.Elements));
        long done = 0;
        var report = new List<QuantizedTensor>(plan.Count);
        for (int i = 0; i < plan.Count; i++)
        {
            var p = plan[i];
            var src = byName[p.Name];
            int index = i;
            float[]? importance = options.Imatrix?.Find(p.Name);
            if (importance is not null && importance.Length != p.Dims[0])
            {
                // llama.cpp tolerates a mismatched embedding (its imatrix never covers it) and refuses any other tensor.
                if (p.Name == "token_embd.weight") importance = null;
                else throw new ArgumentException($"importance matrix '{options.Imatrix!.Source}' has {importance.Length} weights for '{p.Name}', whose rows have {p.Dims[0]}");
            }
            writer.AddTensor(p.Name, p.Dims, p.Type, stream =>
            {
                options.Progress?.Report(new QuantizeProgress((double)done / total, p.Name, index, plan.Count));
                WriteTensor(stream, src, p, importance, options, cancellation, rows =>
                {
                    long now = Interlocked.Add(ref done, rows * p.Dims[0]);
                    options.Progress?.Report(new QuantizeProgress((double)now / total, p.Name, index, plan.Count));
                });
            });
            report.Add(new QuantizedTensor(p, src.SourceBytes, p.Bytes));
        }
        writer.Write(output);
        options.Progress?.Report(new QuantizeProgress(1.0, "", plan.Count, plan.Count));
        return new QuantizeResult(Path.GetFullPath(output), options.Preset, report, clock.Elapsed.TotalSeconds);
    }

    private static List<SourceTensor> Sources(LoadedModel model)
    {
        var c = model.Config;
        string arch = ModelMetadata.GgufArchitecture(c);
        bool permute = model.SourceFormat != "gguf" && arch == "llama" && c.Rope == RopeStyle.Neox;
        if (arch == "qwen2" && c.Rope != RopeStyle.Neox)
            throw new NotSupportedException($"{model.SourcePath}: a qwen2 model with interleaved RoPE rows cannot be written as GGUF qwen2");
        return SourceTensor.From(c, model.Weights, permute);
    }

    private static IReadOnlyList<PlannedTensor> Plan(ModelConfig c, List<SourceTensor> sources, QuantizeOptions options) =>
        QuantizationPlan.Build(options.Preset, sources.Select(s => s.PlanInput), c.Layers, c.Heads / c.KvHeads,
            options.Overrides, options.Imatrix is not null);

    private static GgufMetadata Metadata(LoadedModel model, GgufMetadata? source, QuantizeOptions options)
    {
        GgufMetadata m;
        if (source is not null)
        {
            m = source.Clone();
            foreach (var key in new[] { "split.no", "split.count", "split.tensors.count" }) m.Remove(key);
            if (options.Name is { } name) m.Set("general.name", GgufValue.FromString(name));
        }
        else
        {
            string name = options.Name ?? Path.GetFileNameWithoutExtension(Path.TrimEndingDirectorySeparator(model.SourcePath));
            m = ModelMetadata.Build(model, name);
        }
        m.Set("general.quantization_version", GgufValue.FromUInt32(2));
        m.Set("general.file_type", GgufValue.FromUInt32((uint)options.Preset.FileType));
        return m;
    }

    private static unsafe void WriteTensor(Stream stream, SourceTensor src, PlannedTensor p, float[]? importance,
        QuantizeOptions options, CancellationToken cancellation, Action<long> rowsDone)
    {
        cancellation.ThrowIfCancellationRequested();
        if (src.Vector is { } v)
        {
            stream.Write(MemoryMarshal.AsBytes(v.AsSpan()));
            rowsDone(1);
            return;
        }
        var m = src.Matrix!;
        int cols = m.Cols, rows = m.Rows;
        long rowBytes = GgmlTypeInfo.RowBytes(p.Type, cols);
        bool copy = src.PermuteHeads == 0 && m.Format.Ggml == p.Type && m.RowBytes == rowBytes;
        var encoder = copy ? null : RowEncoder.For(p.Type);
        var accelerator = !copy && options.Accelerator is { } a && a.Supports(p.Type) ? a : null;
        int chunkRows = (int)Math.Clamp(ChunkElements / cols, 1, rows);
        var buffer = ArrayPool<byte>.Shared.Rent(checked((int)(chunkRows * rowBytes)));
        float[]? floats = accelerator is null ? null : ArrayPool<float>.Shared.Rent(checked(chunkRows * cols));
        try
        {
            for (int start = 0; start < rows; start += chunkRows)
            {
                cancellation.ThrowIfCancellationRequested();
                int n = Math.Min(chunkRows, rows - start);
                if (copy)
                {
                    stream.Write(new ReadOnlySpan<byte>(m.Data + start * m.RowBytes, checked((int)(n * rowBytes))));
                }
                else if (accelerator is not null)
                {
                    DequantizeRows(src, start, n, floats!, options.Threads, cancellation);
                    accelerator.Quantize(p.Type, floats.AsSpan(0, n * cols), n, cols, importance, buffer.AsSpan(0, checked((int)(n * rowBytes))));
                    stream.Write(buffer.AsSpan(0, checked((int)(n * rowBytes))));
                }
                else
                {
                    EncodeRows(src, encoder!, importance, start, n, rowBytes, buffer, options.Threads, cancellation);
                    stream.Write(buffer.AsSpan(0, checked((int)(n * rowBytes))));
                }
                rowsDone(n);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            if (floats is not null) ArrayPool<float>.Shared.Return(floats);
        }
    }

    /// <summary>The source rows [start, start + count) as floats, row-major, in parallel (input of an accelerator).</summary>
    private static void DequantizeRows(SourceTensor src, int start, int count, float[] x, int threads, CancellationToken cancellation)
    {
        var m = src.Matrix!;
        int cols = m.Cols;
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, Math.Min(threads, count)), CancellationToken = cancellation };
        Parallel.For(0, count, parallel, r => m.DequantizeRow(src.SourceRow(start + r), x.AsSpan(r * cols, cols)));
    }

    private static void EncodeRows(SourceTensor src, RowEncoder encoder, float[]? importance, int start, int count, long rowBytes,
        byte[] buffer, int threads, CancellationToken cancellation)
    {
        var m = src.Matrix!;
        int cols = m.Cols;
        int workers = Math.Max(1, Math.Min(threads, count));
        // Several slices per worker balance rows of unequal cost (k-quant searches vary with the data).
        int slices = Math.Min(count, workers * 4);
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = workers, CancellationToken = cancellation };
        Parallel.For(0, slices, parallel, () => new float[cols], (slice, _, x) =>
        {
            int a = (int)((long)count * slice / slices), b = (int)((long)count * (slice + 1) / slices);
            for (int r = a; r < b; r++)
            {
                m.DequantizeRow(src.SourceRow(start + r), x);
                encoder.Encode(x, buffer.AsSpan((int)(r * rowBytes), (int)rowBytes), importance);
            }
            return x;
        }, _ => { });
    }
}
