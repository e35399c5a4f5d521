using System.Globalization;
using System.Text;

namespace QuantServe.Engine.Tokenization.ChatTemplates;

internal enum ChunkKind { Text, Output, Statement }

/// <summary>A piece of template source: literal text, or a <c>{{ }}</c> / <c>{% %}</c> tag with its expression tokens.</summary>
internal sealed record Chunk(ChunkKind Kind, int Offset, string Text, List<Tok> Tokens);

internal enum TokKind { Name, String, Int, Float, Op, End }

/// <summary>An expression token; <see cref="Offset"/> is its position in the template source.</summary>
internal readonly record struct Tok(TokKind Kind, string Text, object? Value, int Offset)
{
    public bool Is(string op) => (Kind == TokKind.Op || Kind == TokKind.Name) && Text == op;
}

/// <summary>
/// Splits a template into text and tags, applying Jinja's whitespace control the way Hugging Face configures it:
/// <c>-</c> markers strip all adjacent whitespace, <c>trim_blocks</c> drops the first newline after a statement or
/// comment tag, <c>lstrip_blocks</c> drops spaces and tabs between a line start and a statement or comment tag
/// (<c>+</c> markers disable both), and one trailing newline of the source is dropped (keep_trailing_newline=False).
/// </summary>
internal static class JinjaLexer
{
    private enum TagKind { Output, Statement, Comment }

    private sealed record RawPiece(bool IsTag, TagKind Kind, int Offset, string Text, bool StripBefore, bool StripAfter,
        bool PlusBefore, bool PlusAfter);

    public static List<Chunk> Tokenize(string source, bool trimBlocks = true, bool lstripBlocks = true)
    {
        var pieces = Split(source);
        var chunks = new List<Chunk>(pieces.Count);
        for (int i = 0; i < pieces.Count; i++)
        {
            var p = pieces[i];
            if (p.IsTag)
            {
                if (p.Kind == TagKind.Comment) continue;
                chunks.Add(new Chunk(p.Kind == TagKind.Output ? ChunkKind.Output : ChunkKind.Statement, p.Offset, "",
                    TokenizeExpression(source, p.Offset + 2 + (p.StripBefore || p.PlusBefore ? 1 : 0), p.Text)));
                continue;
            }
            string text = p.Text;
            RawPiece? prev = i > 0 ? pieces[i - 1] : null;
            RawPiece? next = i + 1 < pieces.Count ? pieces[i + 1] : null;
            if (next != null)
            {
                if (next.StripBefore) text = text.TrimEnd(PyWhitespace);
                else if (lstripBlocks && next.Kind != TagKind.Output && !next.PlusBefore)
                {
                    int nl = text.LastIndexOf('\n');
                    bool atLineStart = nl >= 0 || prev == null;
                    if (atLineStart && text.AsSpan(nl + 1).IndexOfAnyExcept(' ', '\t') < 0) text = text[..(nl + 1)];
                }
            }
            if (prev != null)
            {
                if (prev.StripAfter) text = text.TrimStart(PyWhitespace);
                else if (trimBlocks && prev.Kind != TagKind.Output && !prev.PlusAfter)
                {
                    if (text.StartsWith('\n')) text = text[1..];
                    else if (text.StartsWith("\r\n", StringComparison.Ordinal)) text = text[2..];
                }
            }
            if (next == null)
            {
                if (text.EndsWith("\r\n", StringComparison.Ordinal)) text = text[..^2];
                else if (text.EndsWith('\n')) text = text[..^1];
            }
            text = text.Replace("\r\n", "\n");
            if (text.Length > 0) chunks.Add(new Chunk(ChunkKind.Text, p.Offset, text, []));
        }
        return chunks;
    }

    private static readonly char[] PyWhitespace = [' ', '\t', '\n', '\r', '\f', '\v'];

    private static List<RawPiece> Split(string s)
    {
        var pieces = new List<RawPiece>();
        int pos = 0, textStart = 0;
        while (pos < s.Length)
        {
            int open = s.IndexOf('{', pos);
            if (open < 0 || open + 1 >= s.Length) break;
            char c = s[open + 1];
            if (c != '{' && c != '%' && c != '#') { pos = open + 1; continue; }
            var kind = c == '{' ? TagKind.Output : c == '%' ? TagKind.Statement : TagKind.Comment;
            if (open > textStart) pieces.Add(new RawPiece(false, TagKind.Output, textStart, s[textStart..open], false, false, false, false));
            int inner = open + 2;
            bool stripBefore = inner < s.Length && s[inner] == '-';
            bool plusBefore = inner < s.Length && s[inner] == '+';
            if (stripBefore || plusBefore) inner++;
            string close = kind == TagKind.Output ? "}}" : kind == TagKind.Statement ? "%}" : "#}";
            int end = kind == TagKind.Comment ? s.IndexOf(close, inner, StringComparison.Ordinal) : FindClose(s, inner, close);
            if (end < 0)
                throw JinjaException.At(s, open, kind == TagKind.Comment ? "unclosed comment: missing '#}'" : $"unclosed tag: missing '{close}'");
            int innerEnd = end;
            bool stripAfter = innerEnd > inner && s[innerEnd - 1] == '-';
            bool plusAfter = innerEnd > inner && s[innerEnd - 1] == '+';
            if (stripAfter || plusAfter) innerEnd--;
            string body = s[inner..innerEnd];
            pieces.Add(new RawPiece(true, kind, open, body, stripBefore, stripAfter, plusBefore, plusAfter));
            pos = end + 2;
            textStart = pos;
            if (kind == TagKind.Statement && body.Trim() == "raw")
            {
                // {% raw %}...{% endraw %}: the body is literal text.
                int endRaw = FindEndRaw(s, pos, out int endRawTagStart, out bool endStripBefore, out bool endStripAfter);
                if (endRaw < 0) throw JinjaException.At(s, open, "unclosed 'raw' block: missing '{% endraw %}'");
                // The raw tags become empty comments, which keep their whitespace control for the text around them.
                pieces[^1] = pieces[^1] with { Kind = TagKind.Comment, Text = "", PlusAfter = true }; // Jinja keeps the newline after {% raw %}
                if (endRawTagStart > pos) pieces.Add(new RawPiece(false, TagKind.Output, pos, s[pos..endRawTagStart], false, false, false, false));
                pieces.Add(new RawPiece(true, TagKind.Comment, endRawTagStart, "", endStripBefore, endStripAfter, false, false));
                pos = endRaw;
                textStart = pos;
            }
        }
        if (textStart < s.Length) pieces.Add(new RawPiece(false, TagKind.Output, textStart, s[textStart..], false, false, false, false));
        return pieces;
    }

    private static int FindEndRaw(string s, int from, out int tagStart, out bool stripBefore, out bool stripAfter)
    {
        int pos = from;
        while (true)
        {
            int open = s.IndexOf("{%", pos, StringComparison.Ordinal);
            if (open < 0) { tagStart = -1; stripBefore = stripAfter = false; return -1; }
            int i = open + 2;
            stripBefore = i < s.Length && s[i] == '-';
            if (stripBefore || (i < s.Length && s[i] == '+')) i++;
            int close = s.IndexOf("%}", i, StringComparison.Ordinal);
            if (close < 0) { tagStart = -1; stripAfter = false; return -1; }
            string body = s[i..close];
            stripAfter = body.EndsWith('-');
            if (body.TrimEnd('-', '+').Trim() == "endraw") { tagStart = open; return close + 2; }
            pos = open + 2;
        }
    }

    private static int FindClose(string s, int from, string close)
    {
        int i = from;
        while (i < s.Length - 1)
        {
            char c = s[i];
            if (c == '\'' || c == '"')
            {
                int j = i + 1;
                while (j < s.Length && s[j] != c) j += s[j] == '\\' ? 2 : 1;
                i = j + 1;
                continue;
            }
            if (c == close[0] && s[i + 1] == close[1]) return i;
            i++;
        }
        return -1;
    }

    private static readonly string[] Ops2 = ["==", "!=", "<=", ">=", "//", "**"];
    private const string Ops1 = "+-*/%~<>=()[]{},.:|";

    private static List<Tok> TokenizeExpression(string source, int baseOffset, string text)
    {
        var toks = new List<Tok>();
        int i = 0;
        while (i < text.Length)
        {
            char c = text[i];
            if (char.IsWhiteSpace(c)) { i++; continue; }
            int at = baseOffset + i;
            if (char.IsLetter(c) || c == '_')
            {
                int j = i + 1;
                while (j < text.Length && (char.IsLetterOrDigit(text[j]) || text[j] == '_')) j++;
                toks.Add(new Tok(TokKind.Name, text[i..j], null, at));
                i = j;
                continue;
            }
            if (char.IsAsciiDigit(c))
            {
                int j = i;
                while (j < text.Length && (char.IsAsciiDigit(text[j]) || text[j] == '_')) j++;
                bool isFloat = false;
                if (j + 1 < text.Length && text[j] == '.' && char.IsAsciiDigit(text[j + 1]))
                {
                    isFloat = true;
                    j++;
                    while (j < text.Length && (char.IsAsciiDigit(text[j]) || text[j] == '_')) j++;
                }
                if (j < text.Length && (text[j] == 'e' || text[j] == 'E'))
                {
                    int k = j + 1;
                    if (k < text.Length && (text[k] == '+' || text[k] == '-')) k++;
                    if (k < text.Length && char.IsAsciiDigit(text[k]))
                    {
                        isFloat = true;
                        j = k;
                        while (j < text.Length && char.IsAsciiDigit(text[j])) j++;
                    }
                }
                string num = text[i..j].Replace("_", "");
                if (isFloat) toks.Add(new Tok(TokKind.Float, num, double.Parse(num, CultureInfo.InvariantCulture), at));
                else if (long.TryParse(num, NumberStyles.None, CultureInfo.InvariantCulture, out long v)) toks.Add(new Tok(TokKind.Int, num, v, at));
                else toks.Add(new Tok(TokKind.Float, num, double.Parse(num, CultureInfo.InvariantCulture), at));
                i = j;
                continue;
            }
            if (c == '\'' || c == '"')
            {
                var sb = new StringBuilder();
                int j = i + 1;
                while (true)
                {
                    if (j >= text.Length) throw JinjaException.At(source, at, "unterminated string literal");
                    char d = text[j];
                    if (d == c) break;
                    if (d == '\\' && j + 1 < text.Length)
                    {
                        j++;
                        char e = text[j];
                        switch (e)
                        {
                            case 'n': sb.Append('\n'); break;
                            case 't': sb.Append('\t'); break;
                            case 'r': sb.Append('\r'); break;
                            case 'b': sb.Append('\b'); break;
                            case 'f': sb.Append('\f'); break;
                            case 'v': sb.Append('\v'); break;
                            case 'a': sb.Append('\a'); break;
                            case '0': sb.Append('\0'); break;
                            case '\\': sb.Append('\\'); break;
                            case '\'': sb.Append('\''); break;
                            case '"': sb.Append('"'); break;
                            case '\n': break;
                            case 'x' when j + 2 < text.Length && IsHex(text.AsSpan(j + 1, 2)):
                                sb.Append((char)int.Parse(text.AsSpan(j + 1, 2), NumberStyles.HexNumber)); j += 2; break;
                            case 'u' when j + 4 < text.Length && IsHex(text.AsSpan(j + 1, 4)):
                                sb.Append((char)int.Parse(text.AsSpan(j + 1, 4), NumberStyles.HexNumber)); j += 4; break;
                            case 'U' when j + 8 < text.Length && IsHex(text.AsSpan(j + 1, 8)):
                                sb.Append(char.ConvertFromUtf32(int.Parse(text.AsSpan(j + 1, 8), NumberStyles.HexNumber))); j += 8; break;
                            default: sb.Append('\\').Append(e); break; // Python keeps unknown escapes verbatim
                        }
                        j++;
                        continue;
                    }
                    sb.Append(d);
                    j++;
                }
                toks.Add(new Tok(TokKind.String, text[i..(j + 1)], sb.ToString(), at));
                i = j + 1;
                continue;
            }
            if (i + 1 < text.Length)
            {
                string two = text.Substring(i, 2);
                if (Array.IndexOf(Ops2, two) >= 0) { toks.Add(new Tok(TokKind.Op, two, null, at)); i += 2; continue; }
            }
            if (Ops1.Contains(c)) { toks.Add(new Tok(TokKind.Op, c.ToString(), null, at)); i++; continue; }
            throw JinjaException.At(source, at, $"unexpected character '{c}' in expression");
        }
        toks.Add(new Tok(TokKind.End, "", null, baseOffset + text.Length));
        return toks;
    }

    private static bool IsHex(ReadOnlySpan<char> s)
    {
        foreach (char c in s) if (!char.IsAsciiHexDigit(c)) return false;
        return true;
    }
}
