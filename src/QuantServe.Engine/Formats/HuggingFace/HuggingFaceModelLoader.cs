using QuantServe.Engine.Models;

namespace QuantServe.Engine.Formats.HuggingFace;

/// <summary>Loads a Llama-family model from a Hugging Face folder (config.json, safetensors, tokenizer.json).</summary>
public static class HuggingFaceModelLoader
{
    /// <summary>Loads the folder <paramref name="folder"/>.</summary>
    public static LoadedModel Load(string folder) => throw new NotSupportedException("Hugging Face loading lands with the safetensors work");
}
