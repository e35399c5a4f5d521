using QuantServe.Engine.Models;
using QuantServe.Engine.Formats;

namespace QuantServe.Engine.Formats.HuggingFace;

/// <summary>Reads <c>generation_config.json</c> into <see cref="GenerationDefaults"/>.</summary>
public static class HuggingFaceGenerationConfig
{
    /// <summary>File name of the generation defaults.</summary>
    public const string FileName = "generation_config.json";

    /// <summary>
    /// The generation defaults of <paramref name="folder"/>: stop tokens from generation_config.json's
    /// <c>eos_token_id</c> (an integer or a list), falling back to <paramref name="fallbackEos"/> (config.json's);
    /// <c>temperature</c>, <c>top_p</c>, <c>top_k</c> as given. An explicit <c>do_sample: false</c> means the model's
    /// authors meant greedy decoding, which is temperature 0.
    /// </summary>
    public static GenerationDefaults Load(string folder, IReadOnlyList<int> fallbackEos)
    {
        string path = Path.Combine(Path.GetFullPath(folder), FileName);
        if (!File.Exists(path)) return new GenerationDefaults { StopTokenIds = fallbackEos.Distinct().ToList() };
        using var doc = HuggingFaceJson.ParseFile(path);
        return JsonGuard.Read(path, () => Read(new HuggingFaceJson(path, doc.RootElement), fallbackEos));
    }

    private static GenerationDefaults Read(HuggingFaceJson j, IReadOnlyList<int> fallbackEos)
    {
        var eos = j.IntOrList("eos_token_id");
        bool greedy = j.Bool("do_sample") == false;
        return new GenerationDefaults
        {
            StopTokenIds = (eos.Count > 0 ? eos : fallbackEos).Distinct().ToList(),
            Temperature = greedy ? 0f : (float?)j.Double("temperature"),
            TopP = greedy ? null : (float?)j.Double("top_p"),
            TopK = greedy ? null : j.Int("top_k"),
        };
    }
}
