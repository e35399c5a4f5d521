using QuantServe.Engine.Formats.Gguf;
using QuantServe.Engine.Formats.Awq;
using QuantServe.Engine.Formats.HuggingFace;
using QuantServe.Engine.Formats.Llama2c;
using QuantServe.Engine.Formats.QuantizedFolder;

namespace QuantServe.Engine.Models;

/// <summary>Opens a model from a path of any supported kind: a <c>.gguf</c> file, a Hugging Face folder, or a llama2.c checkpoint (file or folder).</summary>
public static class ModelLoader
{
    /// <summary>Identifies the kind of model at <paramref name="path"/>, or null when it is none QuantServe reads.</summary>
    public static string? DetectFormat(string path)
    {
        if (File.Exists(path))
        {
            if (path.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase)) return "gguf";
            if (path.EndsWith(".bin", StringComparison.OrdinalIgnoreCase)) return "llama2c";
            return null;
        }
        if (!Directory.Exists(path)) return null;
        if (QuantizedFolderLayout.IsQuantizedFolder(path)) return "quantserve";
        if (AwqCheckpoint.IsAwqFolder(path)) return "awq";
        if (File.Exists(Path.Combine(path, "config.json"))) return "safetensors";
        if (Llama2cModelLoader.IsLlama2cFolder(path)) return "llama2c";
        return null;
    }

    /// <summary>Loads the model at <paramref name="path"/>.</summary>
    public static LoadedModel Load(string path)
    {
        if (!File.Exists(path) && !Directory.Exists(path))
            throw new ModelLoadException(path, "no such file or folder");
        return DetectFormat(path) switch
        {
            "llama2c" => Llama2cModelLoader.Load(path),
            "gguf" => GgufModelLoader.Load(path),
            "safetensors" => HuggingFaceModelLoader.Load(path),
            "quantserve" => QuantizedFolderLoader.Load(path),
            "awq" => AwqCheckpoint.Load(path),
            _ => throw new ModelLoadException(path, "not a recognised model: expected a .gguf file, a Hugging Face folder (config.json + safetensors) or a llama2.c checkpoint with a tok*.bin tokenizer"),
        };
    }
}
