namespace QuantServe.Engine.Tokenization.Bpe;

/// <summary>
/// GPT-2's reversible byte ⇄ character mapping used by byte-level BPE vocabularies: the printable bytes
/// <c>'!'..'~'</c>, <c>'¡'..'¬'</c> and <c>'®'..'ÿ'</c> map to the character with the same code; the other 68 bytes
/// map, in increasing byte order, to U+0100, U+0101, … (so a space is <c>Ġ</c> U+0120 and a newline <c>Ċ</c> U+010A).
/// </summary>
public static class ByteLevelAlphabet
{
    private static readonly char[] ByteToCharTable = BuildByteToChar();
    private static readonly short[] CharToByteTable = BuildCharToByte();

    /// <summary>The character standing for byte <paramref name="b"/>.</summary>
    public static char ByteToChar(byte b) => ByteToCharTable[b];

    /// <summary>The byte that <paramref name="c"/> stands for, or -1 when <paramref name="c"/> is not in the alphabet.</summary>
    public static int CharToByte(char c) => c < CharToByteTable.Length ? CharToByteTable[c] : -1;

    /// <summary>Maps every byte of <paramref name="bytes"/> to its character.</summary>
    public static string Encode(ReadOnlySpan<byte> bytes)
    {
        var chars = new char[bytes.Length];
        for (int i = 0; i < bytes.Length; i++) chars[i] = ByteToCharTable[bytes[i]];
        return new string(chars);
    }

    /// <summary>
    /// Maps the characters of <paramref name="piece"/> back to bytes; null when some character is outside the alphabet
    /// (such pieces, e.g. added tokens with non-ASCII text, decode to their own UTF-8 instead).
    /// </summary>
    public static byte[]? TryDecode(string piece)
    {
        var bytes = new byte[piece.Length];
        for (int i = 0; i < piece.Length; i++)
        {
            int b = CharToByte(piece[i]);
            if (b < 0) return null;
            bytes[i] = (byte)b;
        }
        return bytes;
    }

    private static char[] BuildByteToChar()
    {
        var table = new char[256];
        int next = 256;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            table[b] = printable ? (char)b : (char)next++;
        }
        return table;
    }

    private static short[] BuildCharToByte()
    {
        var table = new short[324];
        Array.Fill(table, (short)-1);
        for (int b = 0; b < 256; b++) table[ByteToCharTable[b]] = (short)b;
        return table;
    }
}
