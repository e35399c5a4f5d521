namespace QuantServe.Engine.Tokenization.ChatTemplates;

/// <summary>
/// Recursive-descent parser for the Jinja subset, following Jinja's precedence: conditional expression, <c>or</c>,
/// <c>and</c>, <c>not</c>, comparisons (<c>== != &lt; &lt;= &gt; &gt;= in</c>, <c>not in</c>), <c>+ -</c>, <c>~</c>,
/// <c>* / // %</c>, <c>**</c>, unary minus, then primaries with postfix access/calls, filters (<c>|</c>) and tests (<c>is</c>).
/// </summary>
internal sealed class JinjaParser
{
    private readonly string _source;
    private readonly List<Chunk> _chunks;
    private int _chunk;
    private List<Tok> _toks = [];
    private int _t;
    private int _nesting; // expression recursion depth, bounded so hostile templates cannot overflow the stack

    private const int MaxNesting = 200;

    private JinjaParser(string source, List<Chunk> chunks)
    {
        _source = source;
        _chunks = chunks;
    }

    public static List<Node> Parse(string source)
    {
        var p = new JinjaParser(source, JinjaLexer.Tokenize(source));
        var body = p.ParseBody([], out string? end);
        if (end != null) throw p.Error(p.Peek, $"unexpected '{end}'");
        return body;
    }

    private JinjaException Error(Tok at, string problem) => JinjaException.At(_source, at.Offset, problem);

    private Tok Peek => _toks[_t];
    private Tok PeekAt(int k) => _toks[Math.Min(_t + k, _toks.Count - 1)];
    private Tok Next() => _toks[_t < _toks.Count - 1 ? _t++ : _t];

    private Tok Expect(string op)
    {
        var t = Peek;
        if (!t.Is(op)) throw Error(t, $"expected '{op}' but found {Describe(t)}");
        return Next();
    }

    private string ExpectName()
    {
        var t = Peek;
        if (t.Kind != TokKind.Name) throw Error(t, $"expected a name but found {Describe(t)}");
        Next();
        return t.Text;
    }

    private void ExpectEnd()
    {
        if (Peek.Kind != TokKind.End) throw Error(Peek, $"unexpected {Describe(Peek)} at end of tag");
    }

    private static string Describe(Tok t) => t.Kind == TokKind.End ? "end of tag" : $"'{t.Text}'";

    /// <summary>Parses nodes until a statement whose keyword is in <paramref name="enders"/> (its tokens become current).</summary>
    private List<Node> ParseBody(string[] enders, out string? end)
    {
        var nodes = new List<Node>();
        while (_chunk < _chunks.Count)
        {
            var c = _chunks[_chunk++];
            switch (c.Kind)
            {
                case ChunkKind.Text:
                    nodes.Add(new TextNode(c.Offset, c.Text));
                    break;
                case ChunkKind.Output:
                    _toks = c.Tokens; _t = 0;
                    if (Peek.Kind == TokKind.End) throw Error(Peek, "empty expression");
                    nodes.Add(new OutputNode(c.Offset, ParseExpression()));
                    ExpectEnd();
                    break;
                default:
                    _toks = c.Tokens; _t = 0;
                    var kw = Peek;
                    if (kw.Kind != TokKind.Name) throw Error(kw, "expected a statement keyword");
                    if (Array.IndexOf(enders, kw.Text) >= 0) { Next(); end = kw.Text; return nodes; }
                    Next();
                    nodes.Add(ParseStatement(kw, c.Offset));
                    break;
            }
        }
        end = null;
        if (enders.Length > 0)
            throw JinjaException.At(_source, _source.Length, $"unexpected end of template: missing '{{% {enders[^1]} %}}'");
        return nodes;
    }

    private Node ParseStatement(Tok kw, int offset)
    {
        if (++_nesting > MaxNesting) throw Error(kw, $"statements nested more than {MaxNesting} levels deep");
        try { return ParseStatementCore(kw, offset); }
        finally { _nesting--; }
    }

    private Node ParseStatementCore(Tok kw, int offset)
    {
        switch (kw.Text)
        {
            case "if": return ParseIf(offset);
            case "for": return ParseFor(offset);
            case "set": return ParseSet(offset);
            case "macro": return ParseMacro(offset);
            case "break":
            case "continue":
                ExpectEnd();
                return new LoopControlNode(offset, kw.Text == "break");
            case "generation":
            {
                ExpectEnd();
                var body = ParseBody(["endgeneration"], out _);
                ExpectEnd();
                return new BlockNode(offset, body, null);
            }
            case "filter":
            {
                string name = ExpectName();
                ExpectEnd();
                var body = ParseBody(["endfilter"], out _);
                ExpectEnd();
                return new BlockNode(offset, body, name);
            }
            case "elif" or "else" or "endif" or "endfor" or "endset" or "endmacro":
                throw Error(kw, $"'{kw.Text}' without a matching opening statement");
            default:
                throw Error(kw, $"unsupported statement '{kw.Text}'");
        }
    }

    private Node ParseIf(int offset)
    {
        var branches = new List<(Expr, List<Node>)>();
        List<Node>? elseBody = null;
        var cond = ParseExpression();
        ExpectEnd();
        while (true)
        {
            var body = ParseBody(["elif", "else", "endif"], out string? end);
            branches.Add((cond, body));
            if (end == "elif") { cond = ParseExpression(); ExpectEnd(); continue; }
            if (end == "else")
            {
                ExpectEnd();
                elseBody = ParseBody(["endif"], out _);
            }
            ExpectEnd();
            return new IfNode(offset, branches, elseBody);
        }
    }

    private Node ParseFor(int offset)
    {
        var targets = new List<string> { ExpectName() };
        while (Peek.Is(",")) { Next(); targets.Add(ExpectName()); }
        if (!Peek.Is("in")) throw Error(Peek, $"expected 'in' in for loop but found {Describe(Peek)}");
        Next();
        var iterable = ParseOr();
        Expr? filter = null;
        if (Peek.Is("if")) { Next(); filter = ParseExpression(); }
        if (Peek.Is("recursive")) throw Error(Peek, "recursive loops are not supported");
        ExpectEnd();
        var body = ParseBody(["else", "endfor"], out string? end);
        List<Node>? elseBody = null;
        if (end == "else") { ExpectEnd(); elseBody = ParseBody(["endfor"], out _); }
        ExpectEnd();
        return new ForNode(offset, targets, iterable, filter, body, elseBody);
    }

    private Node ParseSet(int offset)
    {
        var targets = new List<string> { ExpectName() };
        string? attribute = null;
        if (Peek.Is(".")) { Next(); attribute = ExpectName(); }
        else while (Peek.Is(",")) { Next(); targets.Add(ExpectName()); }
        if (Peek.Kind == TokKind.End && attribute == null && targets.Count == 1)
        {
            var body = ParseBody(["endset"], out _);
            ExpectEnd();
            return new SetNode(offset, targets, null, null, body);
        }
        Expect("=");
        var value = ParseTupleOrExpression();
        ExpectEnd();
        return new SetNode(offset, targets, attribute, value, null);
    }

    private Node ParseMacro(int offset)
    {
        string name = ExpectName();
        var ps = new List<(string, Expr?)>();
        Expect("(");
        while (!Peek.Is(")"))
        {
            string p = ExpectName();
            Expr? def = null;
            if (Peek.Is("=")) { Next(); def = ParseExpression(); }
            ps.Add((p, def));
            if (!Peek.Is(",")) break;
            Next();
        }
        Expect(")");
        ExpectEnd();
        var body = ParseBody(["endmacro"], out _);
        if (Peek.Kind == TokKind.Name && Peek.Text == name) Next();
        ExpectEnd();
        return new MacroNode(offset, name, ps, body);
    }

    private Expr ParseTupleOrExpression()
    {
        var first = ParseExpression();
        if (!Peek.Is(",")) return first;
        var items = new List<Expr> { first };
        while (Peek.Is(",")) { Next(); if (Peek.Kind == TokKind.End) break; items.Add(ParseExpression()); }
        return new ListExpr(first.Offset, items, true);
    }

    public Expr ParseExpression()
    {
        if (++_nesting > MaxNesting) throw Error(Peek, $"expression nested more than {MaxNesting} levels deep");
        try { return ParseConditional(); }
        finally { _nesting--; }
    }

    private Expr ParseConditional()
    {
        var e = ParseOr();
        if (Peek.Is("if"))
        {
            int at = Next().Offset;
            var cond = ParseOr();
            Expr? other = null;
            if (Peek.Is("else")) { Next(); other = ParseExpression(); }
            return new CondExpr(at, cond, e, other);
        }
        return e;
    }

    private Expr ParseOr()
    {
        var left = ParseAnd();
        while (Peek.Is("or")) { int at = Next().Offset; left = new BinaryExpr(at, "or", left, ParseAnd()); }
        return left;
    }

    private Expr ParseAnd()
    {
        var left = ParseNot();
        while (Peek.Is("and")) { int at = Next().Offset; left = new BinaryExpr(at, "and", left, ParseNot()); }
        return left;
    }

    private Expr ParseNot()
    {
        if (Peek.Is("not"))
        {
            var t = Next();
            if (++_nesting > MaxNesting) throw Error(t, $"expression nested more than {MaxNesting} levels deep");
            var operand = ParseNot();
            _nesting--;
            return new UnaryExpr(t.Offset, "not", operand);
        }
        return ParseCompare();
    }

    private Expr ParseCompare()
    {
        var first = ParseMath1();
        List<(string, Expr)>? rest = null;
        while (true)
        {
            var t = Peek;
            string? op = null;
            if (t.Kind == TokKind.Op && t.Text is "==" or "!=" or "<" or "<=" or ">" or ">=") op = t.Text;
            else if (t.Is("in")) op = "in";
            else if (t.Is("not") && PeekAt(1).Is("in")) { Next(); op = "not in"; }
            if (op == null) break;
            Next();
            (rest ??= []).Add((op, ParseMath1()));
        }
        return rest == null ? first : new CompareExpr(first.Offset, first, rest);
    }

    private Expr ParseMath1()
    {
        var left = ParseConcat();
        while (Peek.Kind == TokKind.Op && Peek.Text is "+" or "-")
        {
            var t = Next();
            left = new BinaryExpr(t.Offset, t.Text, left, ParseConcat());
        }
        return left;
    }

    private Expr ParseConcat()
    {
        var left = ParseMath2();
        while (Peek.Is("~")) { int at = Next().Offset; left = new BinaryExpr(at, "~", left, ParseMath2()); }
        return left;
    }

    private Expr ParseMath2()
    {
        var left = ParsePow();
        while (Peek.Kind == TokKind.Op && Peek.Text is "*" or "/" or "//" or "%")
        {
            var t = Next();
            left = new BinaryExpr(t.Offset, t.Text, left, ParsePow());
        }
        return left;
    }

    private Expr ParsePow()
    {
        var left = ParseUnary(withFilter: true);
        while (Peek.Is("**")) { int at = Next().Offset; left = new BinaryExpr(at, "**", left, ParseUnary(withFilter: true)); }
        return left;
    }

    private Expr ParseUnary(bool withFilter)
    {
        Expr node;
        var t = Peek;
        if (t.Kind == TokKind.Op && t.Text is "-" or "+")
        {
            Next();
            if (++_nesting > MaxNesting) throw Error(t, $"expression nested more than {MaxNesting} levels deep");
            node = new UnaryExpr(t.Offset, t.Text, ParseUnary(withFilter: false));
            _nesting--;
        }
        else node = ParsePrimary();
        node = ParsePostfix(node);
        if (withFilter) node = ParseFilterAndTests(node);
        return node;
    }

    private Expr ParsePrimary()
    {
        var t = Next();
        switch (t.Kind)
        {
            case TokKind.String:
            {
                string s = (string)t.Value!;
                while (Peek.Kind == TokKind.String) s += (string)Next().Value!;
                return new LiteralExpr(t.Offset, s);
            }
            case TokKind.Int:
            case TokKind.Float:
                return new LiteralExpr(t.Offset, t.Value);
            case TokKind.Name:
                return t.Text switch
                {
                    "true" or "True" => new LiteralExpr(t.Offset, true),
                    "false" or "False" => new LiteralExpr(t.Offset, false),
                    "none" or "None" => new LiteralExpr(t.Offset, null),
                    _ => new NameExpr(t.Offset, t.Text),
                };
            case TokKind.Op when t.Text == "(":
            {
                if (Peek.Is(")")) { Next(); return new ListExpr(t.Offset, [], true); }
                var e = ParseExpression();
                if (Peek.Is(","))
                {
                    var items = new List<Expr> { e };
                    while (Peek.Is(",")) { Next(); if (Peek.Is(")")) break; items.Add(ParseExpression()); }
                    Expect(")");
                    return new ListExpr(t.Offset, items, true);
                }
                Expect(")");
                return e;
            }
            case TokKind.Op when t.Text == "[":
            {
                var items = new List<Expr>();
                while (!Peek.Is("]"))
                {
                    items.Add(ParseExpression());
                    if (!Peek.Is(",")) break;
                    Next();
                }
                Expect("]");
                return new ListExpr(t.Offset, items, false);
            }
            case TokKind.Op when t.Text == "{":
            {
                var items = new List<(Expr, Expr)>();
                while (!Peek.Is("}"))
                {
                    var k = ParseExpression();
                    Expect(":");
                    items.Add((k, ParseExpression()));
                    if (!Peek.Is(",")) break;
                    Next();
                }
                Expect("}");
                return new DictExpr(t.Offset, items);
            }
            default:
                throw Error(t, $"unexpected {Describe(t)} in expression");
        }
    }

    private Expr ParsePostfix(Expr node)
    {
        while (true)
        {
            var t = Peek;
            if (t.Is("."))
            {
                Next();
                var name = Peek;
                if (name.Kind == TokKind.Int) { Next(); node = new ItemExpr(t.Offset, node, new LiteralExpr(name.Offset, name.Value)); continue; }
                node = new AttrExpr(t.Offset, node, ExpectName());
            }
            else if (t.Is("[")) { Next(); node = ParseSubscript(node, t.Offset); }
            else if (t.Is("(")) { Next(); var (a, k) = ParseCallArgs(); node = new CallExpr(t.Offset, node, a, k); }
            else return node;
        }
    }

    private Expr ParseSubscript(Expr target, int offset)
    {
        Expr? start = null, stop = null, step = null;
        if (!Peek.Is(":")) start = ParseExpression();
        if (!Peek.Is(":")) { Expect("]"); return new ItemExpr(offset, target, start!); }
        Next();
        if (!Peek.Is(":") && !Peek.Is("]")) stop = ParseExpression();
        if (Peek.Is(":"))
        {
            Next();
            if (!Peek.Is("]")) step = ParseExpression();
        }
        Expect("]");
        return new SliceExpr(offset, target, start, stop, step);
    }

    private (List<Expr>, List<(string, Expr)>) ParseCallArgs()
    {
        var args = new List<Expr>();
        var kwargs = new List<(string, Expr)>();
        while (!Peek.Is(")"))
        {
            if (Peek.Kind == TokKind.Name && PeekAt(1).Is("="))
            {
                string n = Next().Text;
                Next();
                kwargs.Add((n, ParseExpression()));
            }
            else
            {
                if (kwargs.Count > 0) throw Error(Peek, "positional argument after keyword argument");
                args.Add(ParseExpression());
            }
            if (!Peek.Is(",")) break;
            Next();
        }
        Expect(")");
        return (args, kwargs);
    }

    private Expr ParseFilterAndTests(Expr node)
    {
        while (true)
        {
            var t = Peek;
            if (t.Is("|"))
            {
                Next();
                string name = ExpectName();
                List<Expr> args = [];
                List<(string, Expr)> kwargs = [];
                if (Peek.Is("(")) { Next(); (args, kwargs) = ParseCallArgs(); }
                node = new FilterExpr(t.Offset, node, name, args, kwargs);
            }
            else if (t.Is("is"))
            {
                Next();
                bool negated = false;
                if (Peek.Is("not")) { Next(); negated = true; }
                string name = ExpectName();
                var args = new List<Expr>();
                if (Peek.Is("("))
                {
                    Next();
                    var (a, _) = ParseCallArgs();
                    args = a;
                }
                else if (StartsTestArgument(Peek)) args.Add(ParseUnary(withFilter: false));
                node = new TestExpr(t.Offset, node, name, args, negated);
            }
            else if (t.Is("(")) { Next(); var (a, k) = ParseCallArgs(); node = new CallExpr(t.Offset, node, a, k); }
            else return node;
        }
    }

    private static bool StartsTestArgument(Tok t) => t.Kind switch
    {
        TokKind.String or TokKind.Int or TokKind.Float => true,
        TokKind.Name => t.Text is not ("and" or "or" or "else" or "if" or "in" or "is" or "not" or "recursive"),
        TokKind.Op => t.Text is "[" or "{",
        _ => false,
    };
}
