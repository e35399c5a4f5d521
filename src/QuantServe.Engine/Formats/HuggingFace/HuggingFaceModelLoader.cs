using QuantServe.Engine.Formats.Gptq;
using QuantServe.Engine.Formats.Safetensors;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tensors;
using QuantServe.Engine.Tokenization.HuggingFace;

namespace QuantServe.Engine.Formats.HuggingFace;

/// <summary>
/// Loads a Llama-family model from a Hugging Face folder: config.json, safetensors weights (single file or sharded),
/// tokenizer.json, and the optional generation_config.json and chat template. Matrices stay in the memory-mapped
/// safetensors files: HF linear weights are [out_features, in_features] row-major, which is <see cref="WeightMatrix"/>'s
/// layout, and their q/k rows are in rotate-half order, so the model runs with <see cref="RopeStyle.Neox"/> and no
/// weight is permuted or copied. Norm weights and biases are small and converted to F32 arrays.
/// </summary>
public static unsafe class HuggingFaceModelLoader
{
    /// <summary>Loads the folder <paramref name="folder"/>.</summary>
    public static LoadedModel Load(string folder)
    {
        folder = Path.GetFullPath(folder);
        if (!Directory.Exists(folder)) throw new ModelLoadException(folder, "no such folder");
        var hf = HuggingFaceConfig.Load(folder);
        var config = hf.ToModelConfig();

        var checkpoint = SafetensorsCheckpoint.Open(folder);
        try
        {
            HuggingFaceTensorLayout.Check(checkpoint, hf);
            bool tied = hf.TieWordEmbeddings || checkpoint.Find(HuggingFaceTensorLayout.Head) is null;
            config = config with { TiedEmbeddings = tied };

            var tokenizer = HfTokenizerJson.Load(folder);
            if (tokenizer.VocabSize > config.VocabSize)
                throw new ModelLoadException(Path.Combine(folder, "tokenizer.json"),
                    $"the tokenizer has {tokenizer.VocabSize} tokens but the model's vocab_size is {config.VocabSize}");

            var weights = MapWeights(checkpoint, config, hf.GptqQuantization);
            var eos = hf.EosTokenIds.Count > 0 ? hf.EosTokenIds : tokenizer.EosId >= 0 ? [tokenizer.EosId] : [];
            var generation = HuggingFaceGenerationConfig.Load(folder, eos);
            string? chatTemplate = HuggingFaceChatTemplate.Load(folder);

            var metadata = hf.DisplayMetadata();
            metadata["safetensors.files"] = string.Join(", ", checkpoint.Files.Select(f => Path.GetFileName(f.Path)));
            foreach (var (k, v) in checkpoint.Files[0].Metadata) metadata["safetensors." + k] = v;

            return new LoadedModel(folder, "safetensors", config, weights, tokenizer, checkpoint.DetachFiles())
            {
                ChatTemplate = chatTemplate,
                Generation = generation,
                Metadata = metadata,
            };
        }
        finally
        {
            checkpoint.Dispose();
        }
    }

    /// <summary>
    /// Builds the weight views over a checked checkpoint (<see cref="HuggingFaceTensorLayout.Check"/> has run).
    /// Matrices point into the mapped files; norms and biases are converted to F32.
    /// </summary>
    public static LlamaWeights MapWeights(SafetensorsCheckpoint checkpoint, ModelConfig config, GptqQuantizationConfig? gptq = null)
    {
        WeightMatrix Linear(string name, int rows, int cols) => gptq is null
            ? Matrix(name)
            : GptqCheckpointReader.ReadLinear(checkpoint, name[..^".weight".Length], rows, cols, gptq);
        SafetensorsTensorInfo Tensor(string name) =>
            checkpoint.Find(name) ?? throw new ModelLoadException(checkpoint.Folder, $"tensor '{name}' is missing from the safetensors files");
        WeightMatrix Matrix(string name) => AsMatrix(Tensor(name));
        float[] Vector(string name) => ToFloats(Tensor(name));
        float[]? OptionalVector(string name) => checkpoint.Find(name) is { } t ? ToFloats(t) : null;
        string L(int l, string suffix) => HuggingFaceTensorLayout.Layer(l, suffix);

        var embedding = Matrix(HuggingFaceTensorLayout.Embedding);
        var layers = new LayerWeights[config.Layers];
        for (int l = 0; l < config.Layers; l++)
        {
            layers[l] = new LayerWeights
            {
                AttnNorm = Vector(L(l, "input_layernorm.weight")),
                Wq = Linear(L(l, "self_attn.q_proj.weight"), config.QDim, config.Dim),
                Wk = Linear(L(l, "self_attn.k_proj.weight"), config.KvDim, config.Dim),
                Wv = Linear(L(l, "self_attn.v_proj.weight"), config.KvDim, config.Dim),
                Wo = Linear(L(l, "self_attn.o_proj.weight"), config.Dim, config.QDim),
                Bq = config.Architecture == "qwen2" ? OptionalVector(L(l, "self_attn.q_proj.bias")) : null,
                Bk = config.Architecture == "qwen2" ? OptionalVector(L(l, "self_attn.k_proj.bias")) : null,
                Bv = config.Architecture == "qwen2" ? OptionalVector(L(l, "self_attn.v_proj.bias")) : null,
                FfnNorm = Vector(L(l, "post_attention_layernorm.weight")),
                Gate = Linear(L(l, "mlp.gate_proj.weight"), config.HiddenDim, config.Dim),
                Up = Linear(L(l, "mlp.up_proj.weight"), config.HiddenDim, config.Dim),
                Down = Linear(L(l, "mlp.down_proj.weight"), config.Dim, config.HiddenDim),
            };
        }
        return new LlamaWeights
        {
            TokenEmbedding = embedding,
            Layers = layers,
            FinalNorm = Vector(HuggingFaceTensorLayout.FinalNorm),
            Output = config.TiedEmbeddings ? embedding : Matrix(HuggingFaceTensorLayout.Head),
        };
    }

    /// <summary>A [rows, cols] float tensor as a <see cref="WeightMatrix"/> over the mapped bytes.</summary>
    public static WeightMatrix AsMatrix(SafetensorsTensorInfo t)
    {
        if (t.Shape.Count != 2)
            throw new ModelLoadException(t.File.Path, $"tensor '{t.Name}' has shape {t.ShapeText}; a weight matrix needs two dimensions");
        var ggml = t.DType.ToGgml();
        var format = ggml is { } g && t.DType.IsFloatWeight() ? TensorFormats.ForGgml(g) : null;
        if (format is null)
            throw new ModelLoadException(t.File.Path, $"tensor '{t.Name}' has dtype {t.DType}, for which QuantServe has no matrix format registered");
        return new WeightMatrix(t.Name, format, checked((int)t.Shape[0]), checked((int)t.Shape[1]), t.Pointer);
    }

    /// <summary>
    /// A float tensor's elements as F32: F16 via IEEE half → single, BF16 as the upper 16 bits of a single
    /// (<c>bits &lt;&lt; 16</c>), F32 copied.
    /// </summary>
    public static float[] ToFloats(SafetensorsTensorInfo t)
    {
        long n = t.ElementCount;
        if (n > Array.MaxLength) throw new ModelLoadException(t.File.Path, $"tensor '{t.Name}' is too large to convert to an array");
        var result = new float[n];
        byte* p = t.Pointer;
        switch (t.DType)
        {
            case SafetensorsDType.F32:
                new ReadOnlySpan<float>(p, (int)n).CopyTo(result);
                break;
            case SafetensorsDType.F16:
                for (int i = 0; i < n; i++) result[i] = (float)System.Runtime.CompilerServices.Unsafe.ReadUnaligned<Half>(p + 2 * i);
                break;
            case SafetensorsDType.BF16:
                for (int i = 0; i < n; i++)
                    result[i] = BitConverter.Int32BitsToSingle(System.Runtime.CompilerServices.Unsafe.ReadUnaligned<ushort>(p + 2 * i) << 16);
                break;
            default:
                throw new ModelLoadException(t.File.Path, $"tensor '{t.Name}' has dtype {t.DType}; expected F32, F16 or BF16");
        }
        return result;
    }
}
