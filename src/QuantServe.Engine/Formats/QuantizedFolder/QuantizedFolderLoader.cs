using System.Text.Json;
using QuantServe.Engine.Formats.HuggingFace;
using QuantServe.Engine.Formats.Llama2c;
using QuantServe.Engine.Formats.Safetensors;
using QuantServe.Engine.Models;
using QuantServe.Engine.Quantization.Formats;
using QuantServe.Engine.Tensors;
using QuantServe.Engine.Tokenization;
using QuantServe.Engine.Tokenization.HuggingFace;

namespace QuantServe.Engine.Formats.QuantizedFolder;

/// <summary>Loads a <see cref="QuantizedFolderLayout">quantized folder</see>: matrices stay in their stored formats,
/// pointing into the memory-mapped <c>model.safetensors</c> (never dequantized to a full-precision copy).</summary>
public static unsafe class QuantizedFolderLoader
{
    /// <summary>Reads and checks <c>quantization_config.json</c> in <paramref name="folder"/>.</summary>
    public static QuantizationConfig ReadConfig(string folder)
    {
        string path = Path.Combine(folder, QuantizedFolderLayout.ConfigFileName);
        if (!File.Exists(path)) throw new ModelLoadException(path, "file not found");
        QuantizationConfig? config;
        try
        {
            config = JsonSerializer.Deserialize<QuantizationConfig>(File.ReadAllText(path), QuantizedFolderLayout.Json);
        }
        catch (JsonException e)
        {
            throw new ModelLoadException(path, $"invalid JSON or missing field: {e.Message}");
        }
        if (config == null) throw new ModelLoadException(path, "empty configuration");
        if (config.Format != QuantizedFolderLayout.FormatName)
            throw new ModelLoadException(path, $"format '{config.Format}' is not '{QuantizedFolderLayout.FormatName}'");
        if (config.Version != QuantizedFolderLayout.Version)
            throw new ModelLoadException(path, $"layout version {config.Version} is not supported (this build reads version {QuantizedFolderLayout.Version})");
        config.ModelConfig.Validate(path);
        return config;
    }

    /// <summary>Loads the model in <paramref name="folder"/>.</summary>
    public static LoadedModel Load(string folder)
    {
        folder = Path.GetFullPath(folder);
        if (!Directory.Exists(folder)) throw new ModelLoadException(folder, "no such folder");
        var q = ReadConfig(folder);
        var c = q.ModelConfig;
        string weightsPath = Path.Combine(folder, QuantizedFolderLayout.WeightsFileName);
        if (!File.Exists(weightsPath)) throw new ModelLoadException(weightsPath, "file not found");
        var file = SafetensorsFile.Open(weightsPath);
        try
        {
            var tokenizer = LoadTokenizer(folder, q, c);
            int qd = c.QDim, kv = c.KvDim;
            var layers = new LayerWeights[c.Layers];
            for (int l = 0; l < c.Layers; l++)
            {
                var n = QuantizedFolderLayout.Layer(l);
                layers[l] = new LayerWeights
                {
                    AttnNorm = Floats(file, n.AttnNorm, c.Dim),
                    FfnNorm = Floats(file, n.FfnNorm, c.Dim),
                    Wq = Matrix(file, q, n.Q, qd, c.Dim),
                    Wk = Matrix(file, q, n.K, kv, c.Dim),
                    Wv = Matrix(file, q, n.V, kv, c.Dim),
                    Wo = Matrix(file, q, n.O, c.Dim, qd),
                    Gate = Matrix(file, q, n.Gate, c.HiddenDim, c.Dim),
                    Up = Matrix(file, q, n.Up, c.HiddenDim, c.Dim),
                    Down = Matrix(file, q, n.Down, c.Dim, c.HiddenDim),
                    Bq = OptionalFloats(file, n.QBias, qd),
                    Bk = OptionalFloats(file, n.KBias, kv),
                    Bv = OptionalFloats(file, n.VBias, kv),
                };
            }
            var embedding = Matrix(file, q, HuggingFaceTensorLayout.Embedding, c.VocabSize, c.Dim);
            var weights = new LlamaWeights
            {
                TokenEmbedding = embedding,
                Layers = layers,
                FinalNorm = Floats(file, HuggingFaceTensorLayout.FinalNorm, c.Dim),
                Output = c.TiedEmbeddings ? embedding : Matrix(file, q, HuggingFaceTensorLayout.Head, c.VocabSize, c.Dim),
            };
            var metadata = new Dictionary<string, string>
            {
                ["quantization.method"] = q.Method,
                ["quantization.type"] = q.Type,
                ["quantization.embedding_type"] = q.EmbeddingType,
            };
            if (q.Source != null) metadata["quantization.source"] = q.Source;
            return new LoadedModel(folder, "quantserve", c, weights, tokenizer, [file])
            {
                ChatTemplate = q.ChatTemplate,
                Generation = new GenerationDefaults { StopTokenIds = q.StopTokenIds },
                Metadata = metadata,
            };
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    private static Tokenizer LoadTokenizer(string folder, QuantizationConfig q, ModelConfig c)
    {
        string name = Path.GetFileName(q.Tokenizer);
        string path = Path.Combine(folder, name);
        if (!File.Exists(path)) throw new ModelLoadException(path, "the tokenizer named in quantization_config.json is missing");
        var tokenizer = name.Equals("tokenizer.json", StringComparison.OrdinalIgnoreCase)
            ? HfTokenizerJson.Load(folder)
            : Llama2cTokenizerFile.Read(path, c.VocabSize);
        if (tokenizer.VocabSize > c.VocabSize)
            throw new ModelLoadException(path, $"the tokenizer has {tokenizer.VocabSize} tokens but the model's vocab_size is {c.VocabSize}");
        return tokenizer;
    }

    private static WeightMatrix Matrix(SafetensorsFile file, QuantizationConfig q, string name, int rows, int cols)
    {
        if (!q.Tensors.TryGetValue(name, out var entry))
            throw new ModelLoadException(Path.Combine(Path.GetDirectoryName(file.Path)!, QuantizedFolderLayout.ConfigFileName), $"no entry for tensor '{name}'");
        if (entry.Rows != rows || entry.Cols != cols)
            throw new ModelLoadException(file.Path, $"tensor '{name}' is [{entry.Rows}, {entry.Cols}], the model configuration needs [{rows}, {cols}]");
        var format = TensorFormats.ForName(entry.Type)
            ?? throw new ModelLoadException(file.Path, $"tensor '{name}' has type '{entry.Type}', which this build does not know");
        if (format is RtnFormat rtn)
        {
            var t = file.Find(name + QuantizedFolderLayout.PackedSuffix)
                ?? throw new ModelLoadException(file.Path, $"tensor '{name}{QuantizedFolderLayout.PackedSuffix}' is missing");
            long rowBytes = rtn.RowBytes(cols);
            if (t.DType != SafetensorsDType.U8 || t.Shape.Count != 2 || t.Shape[0] != rows || t.Shape[1] != rowBytes)
                throw new ModelLoadException(file.Path, $"tensor '{t.Name}' is {t.DType} {t.ShapeText}; {rtn.Name} [{rows}×{cols}] needs U8 [{rows}, {rowBytes}]");
            return rtn.CreateMatrix(name, rows, cols, t.Pointer);
        }
        var f = file.Find(name) ?? throw new ModelLoadException(file.Path, $"tensor '{name}' is missing");
        var m = HuggingFaceModelLoader.AsMatrix(f);
        if (m.Rows != rows || m.Cols != cols || !string.Equals(m.Format.Name, format.Name, StringComparison.OrdinalIgnoreCase))
            throw new ModelLoadException(file.Path, $"tensor '{name}' is {m.Format.Name} [{m.Rows}×{m.Cols}], quantization_config.json says {format.Name} [{rows}×{cols}]");
        return m;
    }

    private static float[] Floats(SafetensorsFile file, string name, int length) =>
        OptionalFloats(file, name, length) ?? throw new ModelLoadException(file.Path, $"tensor '{name}' is missing");

    private static float[]? OptionalFloats(SafetensorsFile file, string name, int length)
    {
        var t = file.Find(name);
        if (t == null) return null;
        if (t.DType != SafetensorsDType.F32 || t.ElementCount != length)
            throw new ModelLoadException(file.Path, $"tensor '{name}' is {t.DType} {t.ShapeText}, expected F32 [{length}]");
        return HuggingFaceModelLoader.ToFloats(t);
    }
}
