using System.Globalization;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Formats.Gguf;

/// <summary>
/// Loads a Llama-family model (llama, mistral, qwen2) from a GGUF file. Matrices stay in the memory map as
/// <see cref="WeightMatrix"/> views whose format is the registered kernel set for their ggml type; norms and biases
/// (F32, F16 or BF16) are converted to float arrays. Every tensor's shape is checked against the hyper-parameters,
/// and a tensor the engine would not use (such as <c>rope_freqs</c> or an output bias) is refused rather than ignored.
/// </summary>
public static unsafe class GgufModelLoader
{
    /// <summary>Loads <paramref name="path"/>.</summary>
    public static LoadedModel Load(string path)
    {
        var file = GgufFile.Open(path);
        try
        {
            return Load(file);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>Builds a model over an open file; the model takes ownership of <paramref name="file"/>.</summary>
    public static LoadedModel Load(GgufFile file)
    {
        var config = GgufModelConfig.Read(file);
        CheckLayout(file, config);
        var weights = ReadWeights(file, config);

        var tokenizer = GgufVocabulary.CreateTokenizer(file);
        if (tokenizer.VocabSize > config.VocabSize)
            throw new ModelLoadException(file.Path, $"the vocabulary has {tokenizer.VocabSize} tokens but the embedding only {config.VocabSize} rows");
        return new LoadedModel(file.Path, "gguf", config, weights, tokenizer, [file])
        {
            ChatTemplate = file.Metadata.GetStringOrNull("tokenizer.chat_template"),
            Generation = new GenerationDefaults { StopTokenIds = GgufVocabulary.StopTokenIds(file, tokenizer) },
            Metadata = Describe(file),
        };
    }

    /// <summary>The tensors of a model with hyper-parameters <paramref name="c"/>: name, ggml-order shape, whether required.</summary>
    public static IEnumerable<(string Name, long[] Shape, bool Required)> Layout(ModelConfig c)
    {
        yield return ("token_embd.weight", [c.Dim, c.VocabSize], true);
        for (int l = 0; l < c.Layers; l++)
        {
            string p = $"blk.{l}.";
            yield return (p + "attn_norm.weight", [c.Dim], true);
            yield return (p + "attn_q.weight", [c.Dim, c.QDim], true);
            yield return (p + "attn_k.weight", [c.Dim, c.KvDim], true);
            yield return (p + "attn_v.weight", [c.Dim, c.KvDim], true);
            yield return (p + "attn_output.weight", [c.QDim, c.Dim], true);
            yield return (p + "attn_q.bias", [c.QDim], false);
            yield return (p + "attn_k.bias", [c.KvDim], false);
            yield return (p + "attn_v.bias", [c.KvDim], false);
            yield return (p + "ffn_norm.weight", [c.Dim], true);
            yield return (p + "ffn_gate.weight", [c.Dim, c.HiddenDim], true);
            yield return (p + "ffn_up.weight", [c.Dim, c.HiddenDim], true);
            yield return (p + "ffn_down.weight", [c.HiddenDim, c.Dim], true);
        }
        yield return ("output_norm.weight", [c.Dim], true);
        yield return ("output.weight", [c.Dim, c.VocabSize], !c.TiedEmbeddings);
    }

    /// <summary>Checks that every required tensor is present with the shape the hyper-parameters imply and that no other tensor exists.</summary>
    private static void CheckLayout(GgufFile file, ModelConfig c)
    {
        var expected = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, shape, required) in Layout(c))
        {
            expected.Add(name);
            var t = file.FindTensor(name);
            if (t is null)
            {
                if (required) throw new ModelLoadException(file.Path, $"tensor '{name}' is missing");
                continue;
            }
            if (!t.Dimensions.SequenceEqual(shape))
                throw new ModelLoadException(file.Path, $"tensor '{name}' has shape {t.Shape}, expected [{string.Join(", ", shape)}] for {c.Architecture} with dim={c.Dim}, hidden={c.HiddenDim}, heads={c.Heads}, kv_heads={c.KvHeads}, head_dim={c.HeadDim}, vocab={c.VocabSize}");
        }
        var unused = file.Tensors.Where(t => !expected.Contains(t.Name)).ToList();
        if (unused.Count > 0)
            throw new ModelLoadException(file.Path, $"tensor '{unused[0].Name}' is not part of a {c.Architecture} model QuantServe can run ({unused.Count} such tensor(s))");
    }

    private static LlamaWeights ReadWeights(GgufFile file, ModelConfig c)
    {
        WeightMatrix Matrix(string name, int rows, int cols)
        {
            var t = file.Tensor(name);
            var format = TensorFormats.ForGgml(t.Type)
                ?? throw new ModelLoadException(file.Path, $"tensor '{name}' is stored as {t.Type}, which QuantServe has no kernels for");
            if (!format.SupportsWidth(cols))
                throw new ModelLoadException(file.Path, $"tensor '{name}': {format.Name} cannot hold rows of {cols} elements");
            long rowBytes = format.RowBytes(cols);
            if (rowBytes * rows != t.ByteSize)
                throw new ModelLoadException(file.Path, $"tensor '{name}': {format.Name} rows of {rowBytes} bytes do not add up to the stored {t.ByteSize} bytes");
            return new WeightMatrix(name, format, rows, cols, t.Data, rowBytes);
        }

        float[] Vector(string name, int length) => ReadVector(file, file.Tensor(name), length);

        float[]? OptionalVector(string name, int length) =>
            file.FindTensor(name) is null ? null : Vector(name, length);

        var embedding = Matrix("token_embd.weight", c.VocabSize, c.Dim);
        var layers = new LayerWeights[c.Layers];
        for (int l = 0; l < c.Layers; l++)
        {
            string p = $"blk.{l}.";
            layers[l] = new LayerWeights
            {
                AttnNorm = Vector(p + "attn_norm.weight", c.Dim),
                Wq = Matrix(p + "attn_q.weight", c.QDim, c.Dim),
                Wk = Matrix(p + "attn_k.weight", c.KvDim, c.Dim),
                Wv = Matrix(p + "attn_v.weight", c.KvDim, c.Dim),
                Wo = Matrix(p + "attn_output.weight", c.Dim, c.QDim),
                Bq = OptionalVector(p + "attn_q.bias", c.QDim),
                Bk = OptionalVector(p + "attn_k.bias", c.KvDim),
                Bv = OptionalVector(p + "attn_v.bias", c.KvDim),
                FfnNorm = Vector(p + "ffn_norm.weight", c.Dim),
                Gate = Matrix(p + "ffn_gate.weight", c.HiddenDim, c.Dim),
                Up = Matrix(p + "ffn_up.weight", c.HiddenDim, c.Dim),
                Down = Matrix(p + "ffn_down.weight", c.Dim, c.HiddenDim),
            };
        }
        var finalNorm = Vector("output_norm.weight", c.Dim);
        var output = c.TiedEmbeddings ? embedding : Matrix("output.weight", c.VocabSize, c.Dim);
        return new LlamaWeights { TokenEmbedding = embedding, Layers = layers, FinalNorm = finalNorm, Output = output };
    }

    /// <summary>A one-dimensional F32, F16 or BF16 tensor of <paramref name="length"/> elements as floats.</summary>
    internal static float[] ReadVector(GgufFile file, GgufTensorInfo t, int length)
    {
        if (t.Dimensions.Count != 1 || t.Dimensions[0] != length)
            throw new ModelLoadException(file.Path, $"tensor '{t.Name}' has shape {t.Shape}, expected [{length}]");
        var result = new float[length];
        switch (t.Type)
        {
            case GgmlType.F32:
                new ReadOnlySpan<float>(t.Data, length).CopyTo(result);
                break;
            case GgmlType.F16:
            {
                var h = new ReadOnlySpan<Half>(t.Data, length);
                for (int i = 0; i < length; i++) result[i] = (float)h[i];
                break;
            }
            case GgmlType.BF16:
            {
                var b = new ReadOnlySpan<ushort>(t.Data, length);
                for (int i = 0; i < length; i++) result[i] = BitConverter.Int32BitsToSingle(b[i] << 16);
                break;
            }
            default:
                throw new ModelLoadException(file.Path, $"tensor '{t.Name}' is stored as {t.Type}; norms and biases must be F32, F16 or BF16");
        }
        return result;
    }

    private static Dictionary<string, string> Describe(GgufFile file)
    {
        var d = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["gguf.version"] = file.Version.ToString(CultureInfo.InvariantCulture),
            ["gguf.tensor_count"] = file.Tensors.Count.ToString(CultureInfo.InvariantCulture),
        };
        foreach (var (key, value) in file.Metadata)
            if (key.StartsWith("general.", StringComparison.Ordinal)) d[key] = value.ToString();
        return d;
    }
}
