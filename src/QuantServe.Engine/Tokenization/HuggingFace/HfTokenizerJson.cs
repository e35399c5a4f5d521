namespace QuantServe.Engine.Tokenization.HuggingFace;

/// <summary>Builds a <see cref="Tokenizer"/> from a Hugging Face <c>tokenizer.json</c> (+ optional <c>tokenizer_config.json</c>).</summary>
public static class HfTokenizerJson
{
    /// <summary>Loads the tokenizer in <paramref name="folder"/> (tokenizer.json, and tokenizer_config.json when present).</summary>
    public static Tokenizer Load(string folder) => throw new NotSupportedException("tokenizer.json support lands with the tokenizer work");
}
