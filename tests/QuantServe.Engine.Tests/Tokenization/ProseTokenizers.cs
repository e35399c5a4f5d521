using QuantServe.Engine.Formats.Llama2c;
using QuantServe.Engine.Tests.TestSupport;
using QuantServe.Engine.Tokenization;
using QuantServe.Engine.Tokenization.HuggingFace;

namespace QuantServe.Engine.Tests.Tokenization;

/// <summary>The LLaMA-2 vocabulary twice, loaded once per test run: prose-15m's tokenizer.json and llama-32k.bin.</summary>
public static class ProseTokenizers
{
    private static readonly Lazy<HfTokenizerFiles> HfFiles = new(() => HfTokenizerJson.Read(SharedAssets.Prose15m));
    private static readonly Lazy<SentencePieceBpeTokenizer> Spm = new(() =>
        Llama2cTokenizerFile.Read(SharedAssets.Path("tokenizers", "llama-32k.bin"), 32000));

    /// <summary>prose-15m's folder tokenizer.</summary>
    public static HfTokenizerFiles Hf => HfFiles.Value;

    /// <summary>The SentencePiece tokenizer from llama-32k.bin.</summary>
    public static SentencePieceBpeTokenizer SentencePiece => Spm.Value;

    /// <summary>Lines of an eval file (without line terminators).</summary>
    public static string[] EvalLines(string name) => File.ReadAllLines(SharedAssets.Path("eval", name));

    /// <summary>A whole eval file.</summary>
    public static string EvalText(string name) => File.ReadAllText(SharedAssets.Path("eval", name));
}
