using System.Diagnostics;
using System.Text.Json;
using QuantServe.Engine.Formats;
using QuantServe.Engine.Formats.HuggingFace;
using QuantServe.Engine.Formats.QuantizedFolder;
using QuantServe.Engine.Formats.Safetensors;
using QuantServe.Engine.Models;
using QuantServe.Engine.Quantization.Formats;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Quantization.Rtn;

/// <summary>Options of <see cref="RtnQuantizer"/>.</summary>
public sealed record RtnQuantizeOptions
{
    /// <summary>Type of the layer matrices: any of QuantServe's own formats (<c>int8</c>, <c>int4-g32</c>, <c>nf4</c>, <c>llm-int8</c>, …).</summary>
    public required string Type { get; init; }

    /// <summary>Type of the token embedding and untied output head: one of QuantServe's formats, or <c>F32</c> / <c>F16</c>.</summary>
    public string EmbeddingType { get; init; } = "int8";

    /// <summary>The method recorded in quantization_config.json (<c>rtn</c>; <c>awq</c> when the matrices already hold AWQ's
    /// codes in the target format and are copied).</summary>
    public string Method { get; init; } = "rtn";

    /// <summary>Threads quantizing rows in parallel.</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;

    /// <summary>Receives progress after every tensor.</summary>
    public IProgress<RtnQuantizeProgress>? Progress { get; init; }
}

/// <summary>Progress: fraction of weights done, the tensor just written, its index and the tensor count.</summary>
public sealed record RtnQuantizeProgress(double Fraction, string Tensor, int Index, int Count);

/// <summary>What one matrix became.</summary>
public sealed record RtnQuantizedTensor(string Name, string Type, int Rows, int Cols, long BytesBefore, long BytesAfter);

/// <summary>The result of a quantization run.</summary>
public sealed record RtnQuantizeResult(string OutputPath, string Type, IReadOnlyList<RtnQuantizedTensor> Tensors, double Seconds)
{
    /// <summary>Matrix bytes in the source.</summary>
    public long BytesBefore => Tensors.Sum(t => t.BytesBefore);

    /// <summary>Matrix bytes written.</summary>
    public long BytesAfter => Tensors.Sum(t => t.BytesAfter);

    /// <summary>Weights in the matrices.</summary>
    public long Parameters => Tensors.Sum(t => (long)t.Rows * t.Cols);

    /// <summary>Stored bits per matrix weight.</summary>
    public double BitsPerWeight => Parameters == 0 ? 0 : 8.0 * BytesAfter / Parameters;
}

/// <summary>
/// Round-to-nearest quantization of any loaded model into a <see cref="QuantizedFolderLayout">quantized folder</see>:
/// layer matrices to <see cref="RtnQuantizeOptions.Type"/>, the embedding (and untied head) to
/// <see cref="RtnQuantizeOptions.EmbeddingType"/>, norms and biases kept as F32. Tensors are quantized while the
/// safetensors file is written (one tensor in memory at a time, rows in parallel); everything is written into a temporary
/// folder beside the output, which replaces the output only when complete. Cancellation leaves no output behind.
/// </summary>
public static unsafe class RtnQuantizer
{
    /// <summary>Loads <paramref name="input"/> (any format <see cref="ModelLoader"/> reads) and quantizes it into <paramref name="output"/>.</summary>
    public static RtnQuantizeResult Quantize(string input, string output, RtnQuantizeOptions options, CancellationToken cancellation = default)
    {
        using var model = ModelLoader.Load(input);
        return Quantize(model, output, options, cancellation);
    }

    /// <summary>Whether <paramref name="type"/> names a format this quantizer writes (so a CLI can dispatch here).</summary>
    public static bool IsRtnType(string type) => RtnFormats.Parse(type) != null;

    /// <summary>Quantizes a loaded model into the folder <paramref name="output"/>.</summary>
    public static RtnQuantizeResult Quantize(LoadedModel model, string output, RtnQuantizeOptions options, CancellationToken cancellation = default)
    {
        var sw = Stopwatch.StartNew();
        var type = ResolveRtn(options.Type);
        var embType = TensorFormats.ForName(options.EmbeddingType) switch
        {
            RtnFormat r => (TensorFormat)r,
            { Name: "F32" or "F16" } f => f,
            _ => throw new ArgumentException($"embedding type '{options.EmbeddingType}' is neither one of QuantServe's formats nor F32/F16", nameof(options)),
        };
        var c = model.Config;
        var tokenizerFiles = TokenizerFiles(model);

        using var staged = new StagedFolder(output);
        output = staged.Output;
        string temp = staged.Path;
        var w = model.Weights;
        var plan = new List<(string Name, WeightMatrix M, TensorFormat F)> { (HuggingFaceTensorLayout.Embedding, w.TokenEmbedding, embType) };
        var writer = new SafetensorsWriter();
        for (int l = 0; l < c.Layers; l++)
        {
            var n = QuantizedFolderLayout.Layer(l);
            var lw = w.Layers[l];
            plan.Add((n.Q, lw.Wq, type)); plan.Add((n.K, lw.Wk, type)); plan.Add((n.V, lw.Wv, type)); plan.Add((n.O, lw.Wo, type));
            plan.Add((n.Gate, lw.Gate, type)); plan.Add((n.Up, lw.Up, type)); plan.Add((n.Down, lw.Down, type));
            writer.Add(n.AttnNorm, [lw.AttnNorm.Length], lw.AttnNorm);
            writer.Add(n.FfnNorm, [lw.FfnNorm.Length], lw.FfnNorm);
            if (lw.Bq != null) writer.Add(n.QBias, [lw.Bq.Length], lw.Bq);
            if (lw.Bk != null) writer.Add(n.KBias, [lw.Bk.Length], lw.Bk);
            if (lw.Bv != null) writer.Add(n.VBias, [lw.Bv.Length], lw.Bv);
        }
        writer.Add(HuggingFaceTensorLayout.FinalNorm, [w.FinalNorm.Length], w.FinalNorm);
        if (!c.TiedEmbeddings) plan.Add((HuggingFaceTensorLayout.Head, w.Output, embType));

        long total = plan.Sum(p => (long)p.M.Rows * p.M.Cols), done = 0;
        var results = new List<RtnQuantizedTensor>();
        var entries = new Dictionary<string, QuantizedTensorEntry>();
        for (int i = 0; i < plan.Count; i++)
        {
            var (name, m, f) = plan[i];
            int index = i;
            long rowBytes = f.RowBytes(m.Cols);
            var (bits, group) = f switch
            {
                IntGroupFormat g => (g.Bits, g.Group),
                CodebookFormat => (4, 64),
                LlmInt8Format => (8, 0),
                _ => (0, 0),
            };
            entries[name] = new QuantizedTensorEntry(f.Name, m.Rows, m.Cols, rowBytes, bits, group);
            results.Add(new RtnQuantizedTensor(name, f.Name, m.Rows, m.Cols, m.ByteCount, rowBytes * m.Rows));
            void Write(Stream s)
            {
                cancellation.ThrowIfCancellationRequested();
                WriteMatrix(m, f, s, options.Threads, cancellation);
                done += (long)m.Rows * m.Cols;
                options.Progress?.Report(new RtnQuantizeProgress(total == 0 ? 1 : (double)done / total, name, index, plan.Count));
            }
            if (f is RtnFormat) writer.Add(name + QuantizedFolderLayout.PackedSuffix, SafetensorsDType.U8, [m.Rows, rowBytes], Write);
            else writer.Add(name, f.Name == "F32" ? SafetensorsDType.F32 : SafetensorsDType.F16, [m.Rows, m.Cols], Write);
        }
        writer.Metadata["format"] = "pt";
        writer.Metadata["quantization"] = QuantizedFolderLayout.FormatName;
        writer.Write(Path.Combine(temp, QuantizedFolderLayout.WeightsFileName));
        cancellation.ThrowIfCancellationRequested();

        string tokenizerName = CopyTokenizerFiles(model, tokenizerFiles, temp);
        var config = new QuantizationConfig
        {
            Method = options.Method,
            Type = type.Name,
            EmbeddingType = embType.Name,
            Source = model.SourcePath,
            SourceFormat = model.SourceFormat,
            ModelConfig = c,
            Tokenizer = tokenizerName,
            StopTokenIds = model.Generation.StopTokenIds,
            ChatTemplate = model.ChatTemplate,
            Tensors = entries,
        };
        File.WriteAllText(Path.Combine(temp, QuantizedFolderLayout.ConfigFileName), JsonSerializer.Serialize(config, QuantizedFolderLayout.Json));
        cancellation.ThrowIfCancellationRequested();
        staged.Commit(QuantizedFolderLayout.IsQuantizedFolder, "a quantized model folder");
        return new RtnQuantizeResult(output, type.Name, results, sw.Elapsed.TotalSeconds);
    }

    private static RtnFormat ResolveRtn(string name) =>
        TensorFormats.ForName(name) as RtnFormat
        ?? throw new ArgumentException($"'{name}' is not one of QuantServe's RTN types (intB[-gG|-pt][-asym] with B in 2, 3, 4, 8; nf4; nf4-dq; fp4; llm-int8)", nameof(name));

    private static void WriteMatrix(WeightMatrix m, TensorFormat f, Stream s, int threads, CancellationToken cancellation)
    {
        long rowBytes = f.RowBytes(m.Cols);
        // A matrix already in the target format (a calibrated quantizer's output, such as AWQ's) is copied, not requantized.
        if (ReferenceEquals(m.Format, f) || (m.Format is RtnFormat && m.Format.Name == f.Name && m.RowBytes == rowBytes))
        {
            for (int r = 0; r < m.Rows; r++)
            {
                cancellation.ThrowIfCancellationRequested();
                s.Write(m.RowSpan(r));
            }
            return;
        }
        if (f is IntGroupFormat { PerTensor: true } pt)
        {
            var all = new byte[checked(m.Rows * rowBytes)];
            pt.QuantizeMatrix(m, all);
            s.Write(all);
            return;
        }
        // Chunks of rows bounded to ~16 MB so memory stays flat whatever the matrix size.
        int chunkRows = (int)Math.Clamp((16L << 20) / Math.Max(1, rowBytes), 1, Math.Max(1, m.Rows));
        var buffer = new byte[chunkRows * rowBytes];
        for (int r0 = 0; r0 < m.Rows; r0 += chunkRows)
        {
            cancellation.ThrowIfCancellationRequested();
            int n = Math.Min(chunkRows, m.Rows - r0);
            Parallel.For(0, n, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, threads), CancellationToken = cancellation },
                () => new float[m.Cols],
                (i, _, row) =>
                {
                    m.DequantizeRow(r0 + i, row);
                    var dst = buffer.AsSpan((int)(i * rowBytes), (int)rowBytes);
                    switch (f)
                    {
                        case RtnFormat rtn: rtn.QuantizeRow(row, dst); break;
                        case { Name: "F32" }: System.Runtime.InteropServices.MemoryMarshal.AsBytes(row.AsSpan()).CopyTo(dst); break;
                        default:
                            var h = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, Half>(dst);
                            for (int j = 0; j < row.Length; j++) h[j] = (Half)row[j];
                            break;
                    }
                    return row;
                },
                _ => { });
            s.Write(buffer, 0, (int)(n * rowBytes));
        }
    }

    /// <summary>The tokenizer (and companion) files of the source, checked before any work is done.</summary>
    private static List<string> TokenizerFiles(LoadedModel model)
    {
        string folder = Directory.Exists(model.SourcePath) ? model.SourcePath : Path.GetDirectoryName(Path.GetFullPath(model.SourcePath))!;
        switch (model.SourceFormat)
        {
            case "safetensors":
            case "quantserve":
                string[] names = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja", "generation_config.json", "config.json"];
                var found = names.Select(n => Path.Combine(folder, n)).Where(File.Exists).ToList();
                var tokBin = model.SourceFormat == "quantserve" ? Directory.GetFiles(folder, "tok*.bin").ToList() : [];
                if (!found.Any(f => f.EndsWith("tokenizer.json", StringComparison.Ordinal)) && tokBin.Count == 0)
                    throw new ModelLoadException(folder, "no tokenizer.json to copy beside the quantized model");
                return [.. found, .. tokBin];
            case "llama2c":
                var tok = Directory.GetFiles(folder, "tok*.bin").Order(StringComparer.Ordinal).FirstOrDefault()
                    ?? throw new ModelLoadException(folder, "no llama2.c tokenizer (tok*.bin) to copy beside the quantized model");
                return [tok];
            default:
                throw new NotSupportedException($"quantizing a {model.SourceFormat} model to a quantized folder is not supported: its tokenizer lives inside the file; quantize the Hugging Face or llama2.c original, or use a GGUF type");
        }
    }

    private static string CopyTokenizerFiles(LoadedModel model, List<string> files, string temp)
    {
        foreach (var f in files) File.Copy(f, Path.Combine(temp, Path.GetFileName(f)));
        if (model.SourceFormat == "llama2c") WriteLlama2cConfig(model.Config, temp);
        return files.Any(f => Path.GetFileName(f) == "tokenizer.json") ? "tokenizer.json" : Path.GetFileName(files.First(f => f.EndsWith(".bin", StringComparison.Ordinal)));
    }

    /// <summary>A Hugging Face style config.json describing a llama2.c model (its q/k rows stay in interleaved RoPE order;
    /// quantization_config.json's model_config is what QuantServe loads).</summary>
    private static void WriteLlama2cConfig(ModelConfig c, string folder)
    {
        var json = new Dictionary<string, object>
        {
            ["architectures"] = new[] { "LlamaForCausalLM" },
            ["model_type"] = "llama",
            ["hidden_size"] = c.Dim,
            ["intermediate_size"] = c.HiddenDim,
            ["num_hidden_layers"] = c.Layers,
            ["num_attention_heads"] = c.Heads,
            ["num_key_value_heads"] = c.KvHeads,
            ["head_dim"] = c.HeadDim,
            ["vocab_size"] = c.VocabSize,
            ["max_position_embeddings"] = c.ContextLength,
            ["rope_theta"] = c.RopeTheta,
            ["rms_norm_eps"] = c.NormEps,
            ["tie_word_embeddings"] = c.TiedEmbeddings,
            ["quantserve_rope_layout"] = c.Rope.ToString().ToLowerInvariant(),
        };
        File.WriteAllText(Path.Combine(folder, "config.json"), JsonSerializer.Serialize(json, new JsonSerializerOptions { WriteIndented = true }));
    }

}
