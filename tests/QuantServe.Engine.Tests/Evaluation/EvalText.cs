using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Evaluation;

/// <summary>The evaluation text of llama-cpp-reference.md: bible.txt followed by pydoc.txt, read as one file.</summary>
internal static class EvalText
{
    private static readonly Lazy<string> BiblePydoc = new(() =>
        File.ReadAllText(SharedAssets.Path("eval", "bible.txt")) + File.ReadAllText(SharedAssets.Path("eval", "pydoc.txt")));

    public static string BibleThenPydoc => BiblePydoc.Value;

    /// <summary>The first 12,000 characters (a few thousand tokens): enough windows for the fast tests.</summary>
    public static string Prefix => BiblePydoc.Value[..12000];

    public static string Prose15mF16 => SharedAssets.Path("models", "prose-15m-gguf", "prose-15m-f16.gguf");

    public static string Prose15mType(string type) => SharedAssets.Path("models", "prose-15m-gguf", $"prose-15m-{type}.gguf");
}
