using QuantServe.Engine.Models;

namespace QuantServe.Engine.Formats.Gguf;

/// <summary>Loads a Llama-family model from a GGUF file.</summary>
public static class GgufModelLoader
{
    /// <summary>Loads <paramref name="path"/>.</summary>
    public static LoadedModel Load(string path) => throw new NotSupportedException("GGUF loading lands with the GGUF work");
}
