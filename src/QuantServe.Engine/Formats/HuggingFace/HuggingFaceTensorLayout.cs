using System.Text.RegularExpressions;
using QuantServe.Engine.Formats.Safetensors;
using QuantServe.Engine.Models;

namespace QuantServe.Engine.Formats.HuggingFace;

/// <summary>A tensor a Llama-family checkpoint must (or may) hold, with the shape its config.json implies.</summary>
/// <param name="Name">Tensor name in transformers' naming.</param>
/// <param name="Shape">Expected shape, outermost first (HF linear weights are [out_features, in_features]).</param>
/// <param name="Required">False for tensors that may be absent (the untied <c>lm_head.weight</c>).</param>
public sealed record HuggingFaceTensorSpec(string Name, long[] Shape, bool Required = true);

/// <summary>
/// The tensor names and shapes of transformers' <c>LlamaForCausalLM</c>, <c>MistralForCausalLM</c> and
/// <c>Qwen2ForCausalLM</c>, and the check of a checkpoint against them.
/// </summary>
public static partial class HuggingFaceTensorLayout
{
    /// <summary>Embedding name.</summary>
    public const string Embedding = "model.embed_tokens.weight";
    /// <summary>Final norm name.</summary>
    public const string FinalNorm = "model.norm.weight";
    /// <summary>Output head name (absent when tied).</summary>
    public const string Head = "lm_head.weight";

    /// <summary>Name of a per-layer tensor: <c>model.layers.{layer}.{suffix}</c>.</summary>
    public static string Layer(int layer, string suffix) => $"model.layers.{layer}.{suffix}";

    /// <summary>Every tensor the config implies, in checkpoint order (embedding, layers, final norm, head).</summary>
    public static IReadOnlyList<HuggingFaceTensorSpec> Expected(HuggingFaceConfig c)
    {
        long dim = c.HiddenSize, q = (long)c.Heads * c.HeadDim, kv = (long)c.KvHeads * c.HeadDim, ff = c.IntermediateSize;
        var specs = new List<HuggingFaceTensorSpec> { new(Embedding, [c.VocabSize, dim]) };
        for (int l = 0; l < c.Layers; l++)
        {
            specs.Add(new(Layer(l, "input_layernorm.weight"), [dim]));
            specs.Add(new(Layer(l, "self_attn.q_proj.weight"), [q, dim]));
            specs.Add(new(Layer(l, "self_attn.k_proj.weight"), [kv, dim]));
            specs.Add(new(Layer(l, "self_attn.v_proj.weight"), [kv, dim]));
            if (c.QkvBias)
            {
                specs.Add(new(Layer(l, "self_attn.q_proj.bias"), [q]));
                specs.Add(new(Layer(l, "self_attn.k_proj.bias"), [kv]));
                specs.Add(new(Layer(l, "self_attn.v_proj.bias"), [kv]));
            }
            specs.Add(new(Layer(l, "self_attn.o_proj.weight"), [dim, q]));
            specs.Add(new(Layer(l, "post_attention_layernorm.weight"), [dim]));
            specs.Add(new(Layer(l, "mlp.gate_proj.weight"), [ff, dim]));
            specs.Add(new(Layer(l, "mlp.up_proj.weight"), [ff, dim]));
            specs.Add(new(Layer(l, "mlp.down_proj.weight"), [dim, ff]));
        }
        specs.Add(new(FinalNorm, [dim]));
        specs.Add(new(Head, [c.VocabSize, dim], Required: false));
        return specs;
    }

    /// <summary>
    /// Checks that <paramref name="checkpoint"/> holds every required tensor of <paramref name="config"/> with the
    /// implied shape and a float dtype (F32, F16, BF16), and no layer beyond <c>num_hidden_layers</c>. Throws
    /// <see cref="ModelLoadException"/> naming the tensor's file, the tensor, and the expected and actual shape.
    /// </summary>
    public static void Check(SafetensorsCheckpoint checkpoint, HuggingFaceConfig config)
    {
        foreach (var spec in Expected(config))
        {
            // GPTQ-packed linear layers are checked tensor by tensor when they are read.
            if (config.GptqQuantization is not null && spec.Name.StartsWith("model.layers.", StringComparison.Ordinal)
                && spec.Name.EndsWith("_proj.weight", StringComparison.Ordinal)) continue;
            var t = checkpoint.Find(spec.Name);
            if (t is null)
            {
                if (spec.Required)
                    throw new ModelLoadException(checkpoint.Folder, $"tensor '{spec.Name}' (shape {SafetensorsTensorInfo.FormatShape(spec.Shape)}) is missing from the safetensors files");
                continue;
            }
            if (!t.Shape.SequenceEqual(spec.Shape))
                throw new ModelLoadException(t.File.Path, $"tensor '{spec.Name}' has shape {t.ShapeText} but config.json implies {SafetensorsTensorInfo.FormatShape(spec.Shape)}");
            if (!t.DType.IsFloatWeight())
                throw new ModelLoadException(t.File.Path, $"tensor '{spec.Name}' has dtype {t.DType}; QuantServe reads F32, F16 and BF16 weights");
        }
        foreach (var name in checkpoint.Tensors.Keys)
        {
            var m = LayerIndex().Match(name);
            if (m.Success && (!int.TryParse(m.Groups[1].ValueSpan, out int layer) || layer >= config.Layers))
                throw new ModelLoadException(checkpoint.Tensors[name].File.Path, $"tensor '{name}' belongs to a layer beyond num_hidden_layers = {config.Layers} in config.json");
        }
    }

    [GeneratedRegex(@"^model\.layers\.(\d+)\.")]
    private static partial Regex LayerIndex();
}
