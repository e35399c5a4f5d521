namespace QuantServe.Engine.Inference.Constraints;

/// <summary>
/// Incremental JSON recognizer (a pushdown automaton over UTF-8 bytes) as a small value type, so a caller can copy a
/// state, try bytes on the copy and drop it on rejection. It accepts exactly the prefixes of RFC 8259 documents
/// (objects, arrays, strings with escapes and <c>\u</c> escapes, numbers, <c>true</c>/<c>false</c>/<c>null</c>,
/// whitespace) that can still be completed, with these extra rules:
/// the top-level value must be an object (unless created with <c>objectOnly: false</c>); strings must be valid UTF-8
/// and <c>\u</c> escapes must pair surrogates (so every accepted string decodes); nesting is limited to
/// <see cref="MaxDepth"/> (at most 128) levels; a run of whitespace outside strings is limited to
/// <see cref="MaxWhitespaceRun"/> bytes; nothing (not even whitespace) is accepted after the top-level value closes.
/// Because no accepted prefix is a dead end, a generator constrained by it can always finish the document.
/// </summary>
public struct JsonState
{
    private enum Mode : byte
    {
        Start, ObjFirst, ObjKey, Colon, Value, ArrFirst, After,
        Str, StrEsc, StrHex, StrUtf8, StrLowBackslash, StrLowU,
        Literal, NumMinus, NumZero, NumInt, NumDot, NumFrac, NumExp, NumExpSign, NumExpDigits,
        Done,
    }

    private const byte FlagKey = 1;          // the open string is an object key
    private const byte FlagExpectLow = 2;    // the \u escape being read must be a low surrogate
    private const byte FlagDigit0IsD = 4;    // first hex digit of the escape was D
    private const byte FlagHigh = 8;         // the escape being read is a high surrogate
    private const byte FlagObjectOnly = 16;  // the top-level value must be an object

    private ulong _stack0, _stack1; // bit i: container at depth i+1 is an array (1) or object (0)
    private byte _depth;
    private Mode _mode;
    private byte _sub;    // literal position, hex digits read, UTF-8 continuation bytes left
    private byte _aux;    // literal index; lowest allowed next UTF-8 byte
    private byte _auxHi;  // highest allowed next UTF-8 byte
    private byte _ws;     // current whitespace run
    private byte _maxWs;
    private byte _maxDepth;
    private byte _flags;

    private static readonly byte[][] Literals = ["true"u8.ToArray(), "false"u8.ToArray(), "null"u8.ToArray()];

    /// <summary>The state before any byte. <paramref name="maxWhitespaceRun"/> bounds consecutive whitespace bytes
    /// outside strings (0..255), <paramref name="maxDepth"/> the nesting (1..128); without
    /// <paramref name="leadingWhitespace"/> the document must start with its value (a generator then cannot pad).</summary>
    public static JsonState Start(int maxWhitespaceRun = 255, int maxDepth = 128, bool objectOnly = true, bool leadingWhitespace = true)
    {
        if (maxWhitespaceRun is < 0 or > 255) throw new ArgumentOutOfRangeException(nameof(maxWhitespaceRun), "must be 0..255");
        if (maxDepth is < 1 or > 128) throw new ArgumentOutOfRangeException(nameof(maxDepth), "must be 1..128");
        return new JsonState
        {
            _mode = Mode.Start,
            _maxWs = (byte)maxWhitespaceRun,
            _maxDepth = (byte)maxDepth,
            _flags = objectOnly ? FlagObjectOnly : (byte)0,
            _ws = leadingWhitespace ? (byte)0 : (byte)maxWhitespaceRun, // a spent whitespace budget; the first value resets it
        };
    }

    /// <summary>Nesting limit.</summary>
    public readonly int MaxDepth => _maxDepth;

    /// <summary>Limit on consecutive whitespace bytes outside strings.</summary>
    public readonly int MaxWhitespaceRun => _maxWs;

    /// <summary>Current nesting depth (open objects and arrays).</summary>
    public readonly int Depth => _depth;

    /// <summary>Whether the bytes so far form a whole document: the top-level value has closed (or, for a bare
    /// top-level number, could end here).</summary>
    public readonly bool IsComplete => _mode == Mode.Done
        || (_depth == 0 && _mode is Mode.NumZero or Mode.NumInt or Mode.NumFrac or Mode.NumExpDigits);

    /// <summary>Whether the automaton is inside a string (where whitespace limits do not apply).</summary>
    public readonly bool InString => _mode is Mode.Str or Mode.StrEsc or Mode.StrHex or Mode.StrUtf8 or Mode.StrLowBackslash or Mode.StrLowU;

    /// <summary>Whether the automaton is inside a string with nothing pending (no escape or UTF-8 sequence open),
    /// where ordinary content bytes leave the state unchanged.</summary>
    public readonly bool InPlainString => _mode == Mode.Str;

    /// <summary>Feeds <paramref name="bytes"/>; false (state then unusable) as soon as one is rejected.</summary>
    public bool TryAccept(ReadOnlySpan<byte> bytes)
    {
        foreach (byte b in bytes)
            if (!TryAccept(b)) return false;
        return true;
    }

    /// <summary>
    /// The fewest bytes that complete the document from here: finishing the current token (closing quote, missing
    /// digits or literal letters, the rest of an escape or UTF-8 sequence), a placeholder key and value where one is
    /// required, then one closing bracket per open container. Every one of those bytes is a single ASCII or UTF-8
    /// continuation byte, so a vocabulary with byte tokens can always finish within this many tokens.
    /// </summary>
    public readonly int BytesToComplete
    {
        get
        {
            int close = _depth;
            int str = 1 + ((_flags & FlagKey) != 0 ? 2 : 0); // closing quote, then ":0" for a key
            switch (_mode)
            {
                case Mode.Start: return (_flags & FlagObjectOnly) != 0 ? 2 : 1;
                case Mode.ObjFirst or Mode.ArrFirst or Mode.After: return close;
                case Mode.ObjKey: return 4 + close;
                case Mode.Colon: return 2 + close;
                case Mode.Value: return 1 + close;
                case Mode.Str: return str + close;
                case Mode.StrEsc: return 1 + str + close;
                case Mode.StrHex:
                {
                    bool high = (_flags & FlagHigh) != 0;
                    return 4 - _sub + (high ? 6 : 0) + str + close;
                }
                case Mode.StrLowBackslash: return 6 + str + close;
                case Mode.StrLowU: return 5 + str + close;
                case Mode.StrUtf8: return _sub + str + close;
                case Mode.Literal: return Literals[_aux].Length - _sub + close;
                case Mode.NumMinus or Mode.NumDot or Mode.NumExp or Mode.NumExpSign: return 1 + close;
                case Mode.NumZero or Mode.NumInt or Mode.NumFrac or Mode.NumExpDigits: return close;
                default: return 0;
            }
        }
    }

    private readonly bool TopIsArray
    {
        get
        {
            int i = _depth - 1;
            return i < 64 ? ((_stack0 >> i) & 1) != 0 : ((_stack1 >> (i - 64)) & 1) != 0;
        }
    }

    private bool Push(bool array)
    {
        if (_depth >= _maxDepth) return false;
        int i = _depth;
        if (i < 64)
        {
            if (array) _stack0 |= 1UL << i; else _stack0 &= ~(1UL << i);
        }
        else
        {
            if (array) _stack1 |= 1UL << (i - 64); else _stack1 &= ~(1UL << (i - 64));
        }
        _depth++;
        return true;
    }

    private void ValueEnded() => _mode = _depth == 0 ? Mode.Done : Mode.After;

    private bool Whitespace()
    {
        if (_ws >= _maxWs) return false;
        _ws++;
        return true;
    }

    private static bool IsWs(byte b) => b is (byte)' ' or (byte)'\t' or (byte)'\n' or (byte)'\r';

    private bool StartValue(byte b)
    {
        switch (b)
        {
            case (byte)'{':
                if (!Push(false)) return false;
                _mode = Mode.ObjFirst;
                return true;
            case (byte)'[':
                if (!Push(true)) return false;
                _mode = Mode.ArrFirst;
                return true;
            case (byte)'"':
                _flags &= unchecked((byte)~FlagKey);
                _mode = Mode.Str;
                return true;
            case (byte)'-': _mode = Mode.NumMinus; return true;
            case (byte)'0': _mode = Mode.NumZero; return true;
            case >= (byte)'1' and <= (byte)'9': _mode = Mode.NumInt; return true;
            case (byte)'t': _aux = 0; _sub = 1; _mode = Mode.Literal; return true;
            case (byte)'f': _aux = 1; _sub = 1; _mode = Mode.Literal; return true;
            case (byte)'n': _aux = 2; _sub = 1; _mode = Mode.Literal; return true;
            default: return false;
        }
    }

    /// <summary>Feeds one byte; false when no JSON document continues this way (the state is then unusable).</summary>
    public bool TryAccept(byte b)
    {
        switch (_mode)
        {
            case Mode.Str:
                if (b == (byte)'"')
                {
                    if ((_flags & FlagKey) != 0) { _mode = Mode.Colon; _ws = 0; }
                    else ValueEnded();
                    return true;
                }
                if (b == (byte)'\\') { _mode = Mode.StrEsc; return true; }
                if (b < 0x20) return false;
                if (b < 0x80) return true;
                return Utf8Lead(b);
            case Mode.StrUtf8:
                if (b < _aux || b > _auxHi) return false;
                if (--_sub == 0) _mode = Mode.Str;
                else { _aux = 0x80; _auxHi = 0xBF; }
                return true;
            case Mode.StrEsc:
                if (b == (byte)'u') { _mode = Mode.StrHex; _sub = 0; _flags &= unchecked((byte)~(FlagDigit0IsD | FlagHigh)); return true; }
                if ((_flags & FlagExpectLow) != 0) return false;
                if (b is (byte)'"' or (byte)'\\' or (byte)'/' or (byte)'b' or (byte)'f' or (byte)'n' or (byte)'r' or (byte)'t') { _mode = Mode.Str; return true; }
                return false;
            case Mode.StrHex:
                return HexDigit(b);
            case Mode.StrLowBackslash:
                if (b != (byte)'\\') return false;
                _mode = Mode.StrLowU;
                return true;
            case Mode.StrLowU:
                if (b != (byte)'u') return false;
                _mode = Mode.StrHex;
                _sub = 0;
                _flags = (byte)((_flags | FlagExpectLow) & ~(FlagDigit0IsD | FlagHigh));
                return true;
            case Mode.Literal:
            {
                var lit = Literals[_aux];
                if (b != lit[_sub]) return false;
                if (++_sub == lit.Length) ValueEnded();
                return true;
            }
            case Mode.NumMinus:
                if (b == (byte)'0') { _mode = Mode.NumZero; return true; }
                if (b is >= (byte)'1' and <= (byte)'9') { _mode = Mode.NumInt; return true; }
                return false;
            case Mode.NumZero:
                if (b == (byte)'.') { _mode = Mode.NumDot; return true; }
                if (b is (byte)'e' or (byte)'E') { _mode = Mode.NumExp; return true; }
                return EndNumber(b);
            case Mode.NumInt:
                if (b is >= (byte)'0' and <= (byte)'9') return true;
                goto case Mode.NumZero;
            case Mode.NumDot:
                if (b is >= (byte)'0' and <= (byte)'9') { _mode = Mode.NumFrac; return true; }
                return false;
            case Mode.NumFrac:
                if (b is >= (byte)'0' and <= (byte)'9') return true;
                if (b is (byte)'e' or (byte)'E') { _mode = Mode.NumExp; return true; }
                return EndNumber(b);
            case Mode.NumExp:
                if (b is (byte)'+' or (byte)'-') { _mode = Mode.NumExpSign; return true; }
                goto case Mode.NumExpSign;
            case Mode.NumExpSign:
                if (b is >= (byte)'0' and <= (byte)'9') { _mode = Mode.NumExpDigits; return true; }
                return false;
            case Mode.NumExpDigits:
                if (b is >= (byte)'0' and <= (byte)'9') return true;
                return EndNumber(b);
            case Mode.Done:
                return false;
        }

        // Structural modes: whitespace first, then the mode's expected bytes.
        if (IsWs(b)) return Whitespace();
        _ws = 0;
        switch (_mode)
        {
            case Mode.Start:
                if ((_flags & FlagObjectOnly) != 0 && b != (byte)'{') return false;
                return StartValue(b);
            case Mode.ObjFirst:
                if (b == (byte)'}') { _depth--; ValueEnded(); return true; }
                goto case Mode.ObjKey;
            case Mode.ObjKey:
                if (b != (byte)'"') return false;
                _flags |= FlagKey;
                _mode = Mode.Str;
                return true;
            case Mode.Colon:
                if (b != (byte)':') return false;
                _mode = Mode.Value;
                return true;
            case Mode.ArrFirst:
                if (b == (byte)']') { _depth--; ValueEnded(); return true; }
                return StartValue(b);
            case Mode.Value:
                return StartValue(b);
            case Mode.After:
                if (b == (byte)',') { _mode = TopIsArray ? Mode.Value : Mode.ObjKey; return true; }
                if (b == (byte)']' && TopIsArray) { _depth--; ValueEnded(); return true; }
                if (b == (byte)'}' && !TopIsArray) { _depth--; ValueEnded(); return true; }
                return false;
            default:
                return false;
        }
    }

    private bool EndNumber(byte b)
    {
        if (_depth == 0) return false; // a bare top-level number ends only with the input
        _mode = Mode.After;
        return TryAccept(b);
    }

    private bool Utf8Lead(byte b)
    {
        switch (b)
        {
            case >= 0xC2 and <= 0xDF: _sub = 1; _aux = 0x80; _auxHi = 0xBF; break;
            case 0xE0: _sub = 2; _aux = 0xA0; _auxHi = 0xBF; break;
            case 0xED: _sub = 2; _aux = 0x80; _auxHi = 0x9F; break;
            case >= 0xE1 and <= 0xEF: _sub = 2; _aux = 0x80; _auxHi = 0xBF; break;
            case 0xF0: _sub = 3; _aux = 0x90; _auxHi = 0xBF; break;
            case >= 0xF1 and <= 0xF3: _sub = 3; _aux = 0x80; _auxHi = 0xBF; break;
            case 0xF4: _sub = 3; _aux = 0x80; _auxHi = 0x8F; break;
            default: return false;
        }
        _mode = Mode.StrUtf8;
        return true;
    }

    private bool HexDigit(byte b)
    {
        int v = b switch
        {
            >= (byte)'0' and <= (byte)'9' => b - '0',
            >= (byte)'a' and <= (byte)'f' => b - 'a' + 10,
            >= (byte)'A' and <= (byte)'F' => b - 'A' + 10,
            _ => -1,
        };
        if (v < 0) return false;
        bool expectLow = (_flags & FlagExpectLow) != 0;
        if (_sub == 0)
        {
            if (expectLow && v != 0xD) return false;
            if (v == 0xD) _flags |= FlagDigit0IsD;
        }
        else if (_sub == 1 && (_flags & FlagDigit0IsD) != 0)
        {
            if (expectLow) { if (v < 0xC) return false; }
            else if (v >= 0xC) return false;     // a lone low surrogate
            else if (v >= 0x8) _flags |= FlagHigh;
        }
        if (++_sub < 4) return true;
        if ((_flags & FlagHigh) != 0) { _mode = Mode.StrLowBackslash; _flags &= unchecked((byte)~FlagHigh); }
        else _mode = Mode.Str;
        _flags &= unchecked((byte)~(FlagExpectLow | FlagDigit0IsD));
        return true;
    }
}
