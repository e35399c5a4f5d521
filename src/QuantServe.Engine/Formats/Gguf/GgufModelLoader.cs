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

    /// <summary>Builds a model over an open file: the model takes ownership of <paramref name="file"/> and disposes it;
    /// if this throws, the caller still owns the file.</summary>
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

    // CheckLayout has already matched every shape to the hyper-parameters.
    private static LlamaWeights ReadWeights(GgufFile file, ModelConfig c)
    {
        float[] Vector(string name, int length) => ReadVector(file, file.Tensor(name), length);

        float[]? OptionalVector(string name, int length) =>
            file.FindTensor(name) is null ? null : Vector(name, length);

        var embedding = file.Matrix("token_embd.weight");
        var layers = new LayerWeights[c.Layers];
        for (int l = 0; l < c.Layers; l++)
        {
            string p = $"blk.{l}.";
            layers[l] = new LayerWeights
            {
                AttnNorm = Vector(p + "attn_norm.weight", c.Dim),
                Wq = file.Matrix(p + "attn_q.weight"),
                Wk = file.Matrix(p + "attn_k.weight"),
                Wv = file.Matrix(p + "attn_v.weight"),
                Wo = file.Matrix(p + "attn_output.weight"),
                Bq = OptionalVector(p + "attn_q.bias", c.QDim),
                Bk = OptionalVector(p + "attn_k.bias", c.KvDim),
                Bv = OptionalVector(p + "attn_v.bias", c.KvDim),
                FfnNorm = Vector(p + "ffn_norm.weight", c.Dim),
                Gate = file.Matrix(p + "ffn_gate.weight"),
                Up = file.Matrix(p + "ffn_up.weight"),
                Down = file.Matrix(p + "ffn_down.weight"),
            };
        }
        var finalNorm = Vector("output_norm.weight", c.Dim);
        var output = c.TiedEmbeddings ? embedding : file.Matrix("output.weight");
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
        if (file.Metadata.Find("general.file_type") is { } ft && ft.TryGetInteger(out long id) && GgufFileType.Name(id) is { } recipe)
            d["general.file_type"] = $"{id} ({recipe})";
        return d;
    }
}
