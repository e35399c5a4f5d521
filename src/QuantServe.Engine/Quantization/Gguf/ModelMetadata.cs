using QuantServe.Engine.Formats.Gguf;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tokenization;

namespace QuantServe.Engine.Quantization.Gguf;

/// <summary>
/// The GGUF metadata of a model that did not come from a GGUF file: <c>general.*</c>, the <c>{arch}.*</c>
/// hyper-parameters llama.cpp reads, and the vocabulary (<see cref="TokenizerMetadata"/>), as convert_hf_to_gguf.py writes them.
/// </summary>
public static class ModelMetadata
{
    /// <summary>The GGUF architecture a model is written as: Llama and Mistral checkpoints are both <c>llama</c>
    /// (interleaved RoPE rows), Qwen2 stays <c>qwen2</c> (rotate-half rows).</summary>
    public static string GgufArchitecture(ModelConfig c) => c.Architecture == "qwen2" ? "qwen2" : "llama";

    /// <summary>Builds the metadata of <paramref name="model"/> named <paramref name="name"/>.</summary>
    public static GgufMetadata Build(LoadedModel model, string name) =>
        Build(model.Config, model.Tokenizer, model.ChatTemplate, model.SourcePath, name);

    /// <summary>Builds the metadata of a model described by <paramref name="c"/> with vocabulary <paramref name="tokenizer"/>
    /// (<paramref name="source"/> names it in errors).</summary>
    public static GgufMetadata Build(ModelConfig c, Tokenizer tokenizer, string? chatTemplate, string source, string name)
    {
        if (c.RopeFrequencyFactors is not null)
            throw new NotSupportedException($"{source}: per-pair RoPE frequency factors (Llama 3.1 rope scaling) cannot be written to GGUF by QuantServe yet");
        string arch = GgufArchitecture(c);
        var m = new GgufMetadata();
        m.Set("general.architecture", GgufValue.FromString(arch));
        m.Set("general.name", GgufValue.FromString(name));
        m.Set($"{arch}.context_length", GgufValue.FromUInt32((uint)c.ContextLength));
        m.Set($"{arch}.embedding_length", GgufValue.FromUInt32((uint)c.Dim));
        m.Set($"{arch}.block_count", GgufValue.FromUInt32((uint)c.Layers));
        m.Set($"{arch}.feed_forward_length", GgufValue.FromUInt32((uint)c.HiddenDim));
        m.Set($"{arch}.rope.dimension_count", GgufValue.FromUInt32((uint)c.HeadDim));
        m.Set($"{arch}.rope.freq_base", GgufValue.FromFloat32(c.RopeTheta));
        m.Set($"{arch}.attention.head_count", GgufValue.FromUInt32((uint)c.Heads));
        m.Set($"{arch}.attention.head_count_kv", GgufValue.FromUInt32((uint)c.KvHeads));
        if (c.HeadDim * c.Heads != c.Dim)
        {
            m.Set($"{arch}.attention.key_length", GgufValue.FromUInt32((uint)c.HeadDim));
            m.Set($"{arch}.attention.value_length", GgufValue.FromUInt32((uint)c.HeadDim));
        }
        m.Set($"{arch}.attention.layer_norm_rms_epsilon", GgufValue.FromFloat32(c.NormEps));
        m.Set($"{arch}.vocab_size", GgufValue.FromUInt32((uint)c.VocabSize));
        if (c.RopeScale != 1f)
        {
            m.Set($"{arch}.rope.scaling.type", GgufValue.FromString("linear"));
            m.Set($"{arch}.rope.scaling.factor", GgufValue.FromFloat32(c.RopeScale));
        }
        TokenizerMetadata.Write(m, tokenizer);
        if (chatTemplate is { } template) m.Set("tokenizer.chat_template", GgufValue.FromString(template));
        return m;
    }
}
