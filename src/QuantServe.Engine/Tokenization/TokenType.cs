namespace QuantServe.Engine.Tokenization;

/// <summary>Token kinds with GGUF's <c>tokenizer.ggml.token_type</c> numbering (SentencePiece's piece types).</summary>
public enum TokenType
{
    /// <summary>Type not stated.</summary>
    Undefined = 0,
    /// <summary>An ordinary piece.</summary>
    Normal = 1,
    /// <summary>The unknown token.</summary>
    Unknown = 2,
    /// <summary>A control token (BOS, EOS, chat markers): decodes to nothing.</summary>
    Control = 3,
    /// <summary>A user-defined token matched verbatim in text.</summary>
    UserDefined = 4,
    /// <summary>Unused slot.</summary>
    Unused = 5,
    /// <summary>A byte-fallback token <c>&lt;0xXX&gt;</c>.</summary>
    Byte = 6,
}
