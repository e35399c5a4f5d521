using QuantServe.Engine.Tokenization.Bpe;

namespace QuantServe.Engine.Tokenization.HuggingFace;

/// <summary>What a Hugging Face folder says about its tokenizer: the tokenizer itself (with BOS/EOS ids and the
/// add-BOS setting) plus the settings from tokenizer_config.json that live outside it.</summary>
public sealed class HfTokenizerFiles
{
    /// <summary>The tokenizer (<see cref="MetaspaceBpeTokenizer"/> or <see cref="ByteLevelBpeTokenizer"/>).</summary>
    public required BpeTokenizer Tokenizer { get; init; }

    /// <summary>Whether the model's settings append EOS to encoded text (<c>add_eos_token</c>, or the post-processor's
    /// template ending with a special token). <see cref="Tokenizer.Encode"/> never appends it; callers that need it do.</summary>
    public bool AddEos { get; init; }

    /// <summary>The chat template (Jinja source) from tokenizer_config.json or chat_template.jinja, if any.</summary>
    public string? ChatTemplate { get; init; }

    /// <summary>The tokenizer.json path.</summary>
    public required string TokenizerJsonPath { get; init; }

    /// <summary>The tokenizer_config.json path, when the folder has one.</summary>
    public string? TokenizerConfigPath { get; init; }
}
