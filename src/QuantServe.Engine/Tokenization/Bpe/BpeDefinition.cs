using QuantServe.Engine.Tokenization.Text;

namespace QuantServe.Engine.Tokenization.Bpe;

/// <summary>Everything a merge-ranked BPE tokenizer is built from, whichever file it was read from.</summary>
public sealed class BpeDefinition
{
    /// <summary>The file the definition came from; named in every error about it.</summary>
    public required string Source { get; init; }

    /// <summary>The model vocabulary by id; null where an id has no model piece (an added token may fill it).</summary>
    public required IReadOnlyList<string?> Pieces { get; init; }

    /// <summary>Merges in rank order (first merges first): the two pieces whose concatenation is also a piece.</summary>
    public required IReadOnlyList<(string Left, string Right)> Merges { get; init; }

    /// <summary>Tokens matched verbatim in text before anything else.</summary>
    public IReadOnlyList<AddedToken> AddedTokens { get; init; } = [];

    /// <summary>Normalizers and pre-tokenizers.</summary>
    public TextPipeline Pipeline { get; init; } = new([], []);

    /// <summary>The decoder chain.</summary>
    public IReadOnlyList<DecoderStep> Decoder { get; init; } = [];

    /// <summary>Beginning-of-sequence id, or -1.</summary>
    public int BosId { get; init; } = -1;

    /// <summary>End-of-sequence id, or -1.</summary>
    public int EosId { get; init; } = -1;

    /// <summary>Whether BOS is added to encoded text by default.</summary>
    public bool AddBos { get; init; }

    /// <summary>The unknown token's text, used where a character has no piece (and no byte fallback); null for none.</summary>
    public string? UnkToken { get; init; }

    /// <summary>Characters without a piece become their UTF-8 bytes as <c>&lt;0xHH&gt;</c> pieces.</summary>
    public bool ByteFallback { get; init; }

    /// <summary>Consecutive unknown characters become a single unknown token.</summary>
    public bool FuseUnk { get; init; }

    /// <summary>A word that is itself a piece is emitted whole, without merging (Llama-3).</summary>
    public bool IgnoreMerges { get; init; }
}
