using System.Text;

namespace QuantServe.Engine.Tokenization;

/// <summary>
/// Text ⇄ token ids for one model. Decoding is byte-oriented so a streamed response never splits a UTF-8
/// sequence: <see cref="TokenBytes"/> gives each token's exact bytes and <see cref="Utf8StreamDecoder"/> turns
/// them into whole characters.
/// </summary>
public abstract class Tokenizer
{
    /// <summary>Number of token ids.</summary>
    public abstract int VocabSize { get; }

    /// <summary>Beginning-of-sequence id, or -1.</summary>
    public abstract int BosId { get; }

    /// <summary>End-of-sequence id, or -1.</summary>
    public abstract int EosId { get; }

    /// <summary>Whether <see cref="Encode"/> adds BOS when the caller does not say (the model's own setting).</summary>
    public virtual bool AddBosByDefault => BosId >= 0;

    /// <summary>Encodes <paramref name="text"/>; with <paramref name="parseSpecial"/> special-token texts such as
    /// <c>&lt;|im_start|&gt;</c> become their ids instead of being tokenized as plain text.</summary>
    public abstract int[] Encode(string text, bool addBos, bool parseSpecial = false);

    /// <summary>The bytes <paramref name="token"/> contributes to decoded text when it follows <paramref name="previousToken"/>
    /// (-1 at the start of a sequence). Control tokens contribute nothing; SentencePiece's dummy-prefix space is dropped at
    /// the start of a sequence: after -1 or BOS. A BOS in the middle of a sequence (a document separator some small models
    /// emit) is passed as <see cref="AfterSeparator"/> so the next token keeps its space, as transformers and llama.cpp print it.</summary>
    public abstract ReadOnlySpan<byte> TokenBytes(int token, int previousToken);

    /// <summary>The token's piece as stored in the vocabulary (for logprob listings and debugging).</summary>
    public abstract string TokenText(int token);

    /// <summary>Whether the id is a control/special token (BOS, EOS, chat markers).</summary>
    public abstract bool IsSpecial(int token);

    /// <summary>Finds the id of a special or ordinary token by its exact piece text, or -1.</summary>
    public abstract int TokenId(string piece);

    /// <summary>The <c>previousToken</c> value for a token after a mid-sequence BOS (see <see cref="TokenBytes"/>).</summary>
    public const int AfterSeparator = -2;

    /// <summary>The context to pass to <see cref="TokenBytes"/> for a token following <paramref name="previous"/>;
    /// <paramref name="atStart"/> says whether everything decoded so far is the sequence's start (nothing, or BOS only).</summary>
    public int DecodeContext(int previous, bool atStart) => previous == BosId && BosId >= 0 && !atStart ? AfterSeparator : previous;

    /// <summary>Decodes ids to text; <paramref name="previousToken"/> is the token before the first one (-1 when none).</summary>
    public string Decode(ReadOnlySpan<int> tokens, int previousToken = -1)
    {
        var bytes = new System.Buffers.ArrayBufferWriter<byte>(Math.Max(16, tokens.Length * 4));
        int prev = previousToken;
        bool atStart = previousToken == -1 || previousToken == BosId;
        foreach (int t in tokens)
        {
            var piece = TokenBytes(t, DecodeContext(prev, atStart));
            piece.CopyTo(bytes.GetSpan(piece.Length));
            bytes.Advance(piece.Length);
            atStart &= t == BosId;
            prev = t;
        }
        return Encoding.UTF8.GetString(bytes.WrittenSpan);
    }
}
