using System.Globalization;
using System.Text;

namespace QuantServe.Engine.Tokenization.Bpe;

/// <summary>
/// One step of a Hugging Face <c>decoder</c> chain, applied here to a single token's bytes so every token's output
/// can be computed once, up front: <see cref="TokenBytesTable"/> runs the chain for each token twice, once as the
/// first token of a sequence and once elsewhere. Steps after <see cref="FuseDecoder"/> see the fused text, so they
/// only affect the start of a sequence.
/// </summary>
public abstract class DecoderStep
{
    /// <summary>Transforms <paramref name="bytes"/>; <paramref name="first"/> is true for the first token of a sequence,
    /// <paramref name="fused"/> whether a Fuse step came earlier.</summary>
    internal abstract byte[] Apply(byte[] bytes, bool first, bool fused);
}

/// <summary><c>Replace</c> with a literal pattern (e.g. U+2581 → space).</summary>
public sealed class ReplaceDecoder(string pattern, string content) : DecoderStep
{
    private readonly byte[] _pattern = Encoding.UTF8.GetBytes(pattern);
    private readonly byte[] _content = Encoding.UTF8.GetBytes(content);

    internal override byte[] Apply(byte[] bytes, bool first, bool fused)
    {
        if (_pattern.Length == 0 || bytes.AsSpan().IndexOf(_pattern) < 0) return bytes;
        var result = new List<byte>(bytes.Length);
        for (int i = 0; i < bytes.Length;)
        {
            if (bytes.AsSpan(i).StartsWith(_pattern)) { result.AddRange(_content); i += _pattern.Length; }
            else result.Add(bytes[i++]);
        }
        return result.ToArray();
    }
}

/// <summary><c>ByteFallback</c>: a token spelled <c>&lt;0xHH&gt;</c> becomes the byte 0xHH.</summary>
public sealed class ByteFallbackDecoder : DecoderStep
{
    internal override byte[] Apply(byte[] bytes, bool first, bool fused) =>
        TryParseByteToken(bytes, out byte b) ? [b] : bytes;

    /// <summary>Whether <paramref name="piece"/> is exactly <c>&lt;0xHH&gt;</c> (two hex digits).</summary>
    internal static bool TryParseByteToken(ReadOnlySpan<byte> piece, out byte value)
    {
        value = 0;
        return piece.Length == 6 && piece[0] == '<' && piece[1] == '0' && piece[2] == 'x' && piece[5] == '>'
            && byte.TryParse(Encoding.ASCII.GetString(piece[3..5]), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value);
    }
}

/// <summary><c>Fuse</c>: joins the tokens into one string; later steps then act on the whole text.</summary>
public sealed class FuseDecoder : DecoderStep
{
    internal override byte[] Apply(byte[] bytes, bool first, bool fused) => bytes;
}

/// <summary><c>Strip</c>: removes up to <c>start</c> leading and <c>stop</c> trailing <c>content</c> characters.</summary>
public sealed class StripDecoder(char content, int start, int stop) : DecoderStep
{
    private readonly byte[] _content = Encoding.UTF8.GetBytes(content.ToString());

    internal override byte[] Apply(byte[] bytes, bool first, bool fused)
    {
        if (fused && !first) return bytes;
        var span = bytes.AsSpan();
        for (int k = 0; k < start && span.StartsWith(_content); k++) span = span[_content.Length..];
        if (!fused) for (int k = 0; k < stop && span.EndsWith(_content); k++) span = span[..^_content.Length];
        return span.Length == bytes.Length ? bytes : span.ToArray();
    }
}

/// <summary><c>ByteLevel</c>: GPT-2 alphabet characters back to bytes; a token with characters outside the
/// alphabet (an added token with non-ASCII text) keeps its own UTF-8.</summary>
public sealed class ByteLevelDecoder : DecoderStep
{
    internal override byte[] Apply(byte[] bytes, bool first, bool fused) =>
        ByteLevelAlphabet.TryDecode(Encoding.UTF8.GetString(bytes)) ?? bytes;
}

/// <summary><c>Metaspace</c>: the replacement character becomes a space, except in the first token of a sequence,
/// where (unless the prepend scheme is <c>never</c>) it is dropped.</summary>
public sealed class MetaspaceDecoder(char replacement, bool dropAtStart) : DecoderStep
{
    private readonly ReplaceDecoder _toSpace = new(replacement.ToString(), " ");
    private readonly ReplaceDecoder _drop = new(replacement.ToString(), "");

    internal override byte[] Apply(byte[] bytes, bool first, bool fused) =>
        (first && dropAtStart ? _drop : _toSpace).Apply(bytes, first, fused);
}

/// <summary>Each token's decoded bytes, in the middle of a sequence and as its first token.</summary>
internal sealed class TokenBytesTable
{
    private readonly byte[][] _bytes;
    private readonly byte[][] _bytesFirst;

    /// <summary>Runs <paramref name="steps"/> over every piece; <paramref name="silent"/> tokens (control tokens) decode to nothing.</summary>
    public TokenBytesTable(IReadOnlyList<string> pieces, IReadOnlyList<DecoderStep> steps, Func<int, bool> silent)
    {
        int n = pieces.Count;
        _bytes = new byte[n][];
        _bytesFirst = new byte[n][];
        for (int id = 0; id < n; id++)
        {
            if (silent(id)) { _bytes[id] = _bytesFirst[id] = []; continue; }
            byte[] raw = Encoding.UTF8.GetBytes(pieces[id]);
            _bytes[id] = Run(raw, steps, first: false);
            var firstBytes = Run(raw, steps, first: true);
            _bytesFirst[id] = firstBytes.AsSpan().SequenceEqual(_bytes[id]) ? _bytes[id] : firstBytes;
        }
    }

    private static byte[] Run(byte[] bytes, IReadOnlyList<DecoderStep> steps, bool first)
    {
        bool fused = false;
        foreach (var step in steps)
        {
            bytes = step.Apply(bytes, first, fused);
            if (step is FuseDecoder) fused = true;
        }
        return bytes;
    }

    public byte[] Get(int id, bool first) => first ? _bytesFirst[id] : _bytes[id];
}
