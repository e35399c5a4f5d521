using System.Text;

namespace QuantServe.Engine.Tokenization;

/// <summary>
/// Turns a stream of tokens into text without ever emitting half of a multi-byte UTF-8 character: bytes of an
/// incomplete sequence are held until the tokens that finish it arrive. Invalid bytes decode to U+FFFD, as a
/// whole-string decode would.
/// </summary>
public sealed class Utf8StreamDecoder
{
    private readonly Tokenizer _tokenizer;
    private readonly System.Text.Decoder _decoder = new UTF8Encoding(false, false).GetDecoder();
    private readonly char[] _chars = new char[64];
    private int _previous;
    private bool _atStart;

    /// <summary>Starts decoding after <paramref name="previousToken"/> (-1, or the prompt's last token).</summary>
    public Utf8StreamDecoder(Tokenizer tokenizer, int previousToken = -1)
    {
        _tokenizer = tokenizer;
        _previous = previousToken;
        _atStart = previousToken == -1 || previousToken == tokenizer.BosId;
    }

    /// <summary>Appends the text completed by <paramref name="token"/> to <paramref name="output"/>; returns the number of chars appended.</summary>
    public int Append(int token, StringBuilder output)
    {
        var bytes = _tokenizer.TokenBytes(token, _tokenizer.DecodeContext(_previous, _atStart));
        _atStart &= token == _tokenizer.BosId;
        _previous = token;
        int written = 0;
        while (!bytes.IsEmpty)
        {
            int take = Math.Min(bytes.Length, 32);
            int n = _decoder.GetChars(bytes[..take], _chars, flush: false);
            output.Append(_chars, 0, n);
            written += n;
            bytes = bytes[take..];
        }
        return written;
    }

    /// <summary>Flushes bytes of an unfinished character at the end of the stream (as U+FFFD).</summary>
    public int Flush(StringBuilder output)
    {
        int n = _decoder.GetChars(ReadOnlySpan<byte>.Empty, _chars, flush: true);
        output.Append(_chars, 0, n);
        return n;
    }
}
