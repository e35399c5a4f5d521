namespace QuantServe.Engine.Tokenization.Bpe;

/// <summary>
/// A token matched verbatim in input text before normalization and BPE (Hugging Face <c>added_tokens</c>, GGUF
/// control and user-defined tokens). <see cref="Special"/> tokens (BOS, EOS, chat markers) are only matched when the
/// caller asks to parse special tokens and decode to nothing; the others are always matched and decode to their text.
/// </summary>
/// <param name="Content">The exact text.</param>
/// <param name="Id">Its id.</param>
/// <param name="Special">Whether it is a control token.</param>
/// <param name="LStrip">Whether white space right before it is swallowed by the match.</param>
/// <param name="RStrip">Whether white space right after it is swallowed by the match.</param>
/// <param name="SingleWord">Whether it only matches when not inside a word.</param>
/// <param name="Normalized">Hugging Face's <c>normalized</c> flag (kept for reference; matching is on the raw text).</param>
public sealed record AddedToken(string Content, int Id, bool Special, bool LStrip = false, bool RStrip = false,
    bool SingleWord = false, bool Normalized = false);
