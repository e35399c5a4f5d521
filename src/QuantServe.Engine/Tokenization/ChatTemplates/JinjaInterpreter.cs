using System.Globalization;
using System.Text;

namespace QuantServe.Engine.Tokenization.ChatTemplates;

/// <summary>Variables visible at one point: loop bodies and macro calls open a child scope, <c>if</c> does not (as in Jinja).</summary>
internal sealed class Scope(Scope? parent)
{
    private readonly Dictionary<string, object?> _vars = new(StringComparer.Ordinal);
    public Scope? Parent { get; } = parent;

    public bool TryGet(string name, out object? value)
    {
        for (var s = this; s != null; s = s.Parent)
            if (s._vars.TryGetValue(name, out value)) return true;
        value = null;
        return false;
    }

    public void Set(string name, object? value) => _vars[name] = value;
}

/// <summary>Thrown by <c>raise_exception</c>; carries the template's message.</summary>
internal sealed class TemplateRaised(string message) : Exception(message);

/// <summary>Walks the AST, writing output to a buffer; runtime problems become <see cref="JinjaException"/> with the node's position.</summary>
internal sealed class JinjaInterpreter
{
    private enum Flow { Normal, Break, Continue }

    private readonly string _source;
    private StringBuilder _out = new();
    private int _callDepth;
    private long _iterations;

    // Limits that keep a hostile or broken template from hanging or crashing the server.
    private const int MaxCallDepth = 100;
    private const long MaxIterations = 5_000_000;
    internal const int MaxStringLength = 16 << 20;

    public JinjaInterpreter(string source) => _source = source;

    public string Render(List<Node> nodes, Scope scope)
    {
        _out = new StringBuilder();
        Flow flow;
        try { flow = Exec(nodes, scope); }
        catch (JinjaRuntimeError e) { throw JinjaException.At(_source, 0, e.Message); } // safety net: errors outside any node's guard
        catch (TemplateRaised e) { throw JinjaException.At(_source, 0, e.Message, raised: true); }
        if (flow != Flow.Normal) throw JinjaException.At(_source, 0, "'break' or 'continue' outside a loop");
        return _out.ToString();
    }

    private Flow Exec(List<Node> nodes, Scope scope)
    {
        foreach (var n in nodes)
        {
            var f = Exec(n, scope);
            if (f != Flow.Normal) return f;
        }
        return Flow.Normal;
    }

    private Flow Exec(Node node, Scope scope)
    {
        switch (node)
        {
            case TextNode t:
                _out.Append(t.Text);
                return Flow.Normal;
            case OutputNode o:
                var value = Eval(o.Value, scope);
                _out.Append(Guard(o.Offset, () => JinjaValue.ToStr(value)));
                if (_out.Length > MaxStringLength) throw JinjaException.At(_source, o.Offset, $"template output exceeds {MaxStringLength} characters");
                return Flow.Normal;
            case IfNode i:
                foreach (var (cond, body) in i.Branches)
                    if (JinjaValue.IsTruthy(Eval(cond, scope))) return Exec(body, scope);
                return i.Else != null ? Exec(i.Else, scope) : Flow.Normal;
            case ForNode f:
                return ExecFor(f, scope);
            case SetNode s:
                ExecSet(s, scope);
                return Flow.Normal;
            case MacroNode m:
                scope.Set(m.Name, MakeMacro(m, scope));
                return Flow.Normal;
            case LoopControlNode lc:
                return lc.IsBreak ? Flow.Break : Flow.Continue;
            case BlockNode b:
                if (b.Filter == null) return Exec(b.Body, scope);
                string captured = Capture(b.Body, scope);
                _out.Append(JinjaValue.ToStr(Guard(b.Offset, () => JinjaFilters.Apply(b.Filter, captured, [], []))));
                return Flow.Normal;
            default:
                throw JinjaException.At(_source, node.Offset, $"unsupported node {node.GetType().Name}");
        }
    }

    private string Capture(List<Node> body, Scope scope)
    {
        var saved = _out;
        _out = new StringBuilder();
        try
        {
            Exec(body, scope);
            return _out.ToString();
        }
        finally { _out = saved; }
    }

    private Flow ExecFor(ForNode f, Scope scope)
    {
        var iterable = Eval(f.Iterable, scope);
        if (iterable == null) throw JinjaException.At(_source, f.Iterable.Offset, "'NoneType' object is not iterable");
        var source = Guard(f.Iterable.Offset, () => JinjaValue.Iterate(iterable));
        List<object?> items = source;
        if (f.Filter != null)
        {
            items = [];
            foreach (var item in source)
            {
                var probe = new Scope(scope);
                Bind(f, probe, item);
                if (JinjaValue.IsTruthy(Eval(f.Filter, probe))) items.Add(item);
            }
        }
        else items = new List<object?>(source); // the body may modify the list it iterates
        if (items.Count == 0) return f.Else != null ? Exec(f.Else, scope) : Flow.Normal;
        var loop = new LoopInfo(items);
        for (int i = 0; i < items.Count; i++)
        {
            if (++_iterations > MaxIterations) throw JinjaException.At(_source, f.Offset, $"template ran more than {MaxIterations} loop iterations");
            loop.Index0 = i;
            var inner = new Scope(scope);
            inner.Set("loop", loop);
            Bind(f, inner, items[i]);
            if (Exec(f.Body, inner) == Flow.Break) break;
        }
        return Flow.Normal;
    }

    private void Bind(ForNode f, Scope scope, object? item)
    {
        if (f.Targets.Count == 1) { scope.Set(f.Targets[0], item); return; }
        var parts = Guard(f.Offset, () => JinjaValue.Iterate(item));
        if (parts.Count != f.Targets.Count)
            throw JinjaException.At(_source, f.Offset, $"cannot unpack {parts.Count} values into {f.Targets.Count} loop variables");
        for (int i = 0; i < parts.Count; i++) scope.Set(f.Targets[i], parts[i]);
    }

    private void ExecSet(SetNode s, Scope scope)
    {
        object? value = s.Body != null ? Capture(s.Body, scope) : Eval(s.Value!, scope);
        if (s.Attribute != null)
        {
            scope.TryGet(s.Targets[0], out var target);
            if (target is not JinjaNamespace ns)
                throw JinjaException.At(_source, s.Offset, $"cannot assign attribute '{s.Attribute}' on {JinjaValue.TypeName(target)} '{s.Targets[0]}' (only namespace() objects)");
            ns.Attributes[s.Attribute] = value;
            return;
        }
        if (s.Targets.Count == 1) { scope.Set(s.Targets[0], value); return; }
        var parts = Guard(s.Offset, () => JinjaValue.Iterate(value));
        if (parts.Count != s.Targets.Count)
            throw JinjaException.At(_source, s.Offset, $"cannot unpack {parts.Count} values into {s.Targets.Count} names");
        for (int i = 0; i < parts.Count; i++) scope.Set(s.Targets[i], parts[i]);
    }

    private JinjaFunction MakeMacro(MacroNode m, Scope defining) => new(m.Name, (args, kwargs) =>
    {
        if (_callDepth >= MaxCallDepth) throw new JinjaRuntimeError($"macro '{m.Name}' nested more than {MaxCallDepth} calls deep");
        _callDepth++;
        try { return CallMacro(m, defining, args, kwargs); }
        finally { _callDepth--; }
    });

    private string CallMacro(MacroNode m, Scope defining, List<object?> args, Dictionary<string, object?> kwargs)
    {
        var scope = new Scope(defining);
        for (int i = 0; i < m.Params.Count; i++)
        {
            var (name, def) = m.Params[i];
            object? v;
            if (i < args.Count) v = args[i];
            else if (kwargs.TryGetValue(name, out var kv)) v = kv;
            else v = def != null ? Eval(def, scope) : new Undefined(name);
            scope.Set(name, v);
        }
        return Capture(m.Body, scope);
    }

    private T Guard<T>(int offset, Func<T> f)
    {
        try { return f(); }
        catch (JinjaRuntimeError e) { throw JinjaException.At(_source, offset, e.Message); }
        catch (TemplateRaised e) { throw JinjaException.At(_source, offset, e.Message, raised: true); }
    }

    public object? Eval(Expr e, Scope scope)
    {
        try { return EvalCore(e, scope); }
        catch (JinjaRuntimeError ex) { throw JinjaException.At(_source, e.Offset, ex.Message); }
        catch (TemplateRaised ex) { throw JinjaException.At(_source, e.Offset, ex.Message, raised: true); }
    }

    private object? EvalCore(Expr e, Scope scope)
    {
        switch (e)
        {
            case LiteralExpr l: return l.Value;
            case NameExpr n: return scope.TryGet(n.Name, out var v) ? v : new Undefined(n.Name);
            case ListExpr l:
            {
                var items = l.IsTuple ? new PyTuple() : new List<object?>(l.Items.Count);
                foreach (var x in l.Items) items.Add(Eval(x, scope));
                return items;
            }
            case DictExpr d:
            {
                var dict = new OrderedDictionary<string, object?>(StringComparer.Ordinal);
                foreach (var (k, val) in d.Items) dict[JinjaValue.ToStr(Eval(k, scope))] = Eval(val, scope);
                return dict;
            }
            case AttrExpr a: return GetAttribute(Eval(a.Target, scope), a.Name);
            case ItemExpr i: return GetItem(Eval(i.Target, scope), Eval(i.Index, scope));
            case SliceExpr s:
                return Slice(Eval(s.Target, scope), s.Start == null ? null : Eval(s.Start, scope),
                    s.Stop == null ? null : Eval(s.Stop, scope), s.Step == null ? null : Eval(s.Step, scope));
            case CallExpr c:
            {
                var callee = Eval(c.Callee, scope);
                var args = c.Args.Select(x => Eval(x, scope)).ToList();
                var kwargs = c.Kwargs.ToDictionary(k => k.Name, k => Eval(k.Value, scope));
                if (callee is JinjaFunction fn) return fn.Invoke(args, kwargs);
                string what = c.Callee switch { NameExpr n => n.Name, AttrExpr a => a.Name, _ => "expression" };
                if (callee is Undefined) throw new JinjaRuntimeError($"'{what}' is undefined (cannot call it)");
                throw new JinjaRuntimeError($"'{what}' ({JinjaValue.TypeName(callee)}) is not callable");
            }
            case FilterExpr f:
            {
                var target = Eval(f.Target, scope);
                var args = f.Args.Select(x => Eval(x, scope)).ToList();
                var kwargs = f.Kwargs.ToDictionary(k => k.Name, k => Eval(k.Value, scope));
                return JinjaFilters.Apply(f.Name, target, args, kwargs);
            }
            case TestExpr t:
            {
                var target = Eval(t.Target, scope);
                var args = t.Args.Select(x => Eval(x, scope)).ToList();
                return JinjaFilters.Test(t.Name, target, args) != t.Negated;
            }
            case UnaryExpr u:
            {
                var v0 = Eval(u.Operand, scope);
                return u.Op switch
                {
                    "not" => !JinjaValue.IsTruthy(v0),
                    "-" => v0 is long lv ? (object)(-lv) : v0 is Undefined ud ? throw Undef(ud) : -JinjaValue.ToDouble(v0),
                    _ => v0 is bool b ? (b ? 1L : 0L) : v0,
                };
            }
            case BinaryExpr b:
            {
                if (b.Op == "and")
                {
                    var l = Eval(b.Left, scope);
                    return JinjaValue.IsTruthy(l) ? Eval(b.Right, scope) : l;
                }
                if (b.Op == "or")
                {
                    var l = Eval(b.Left, scope);
                    return JinjaValue.IsTruthy(l) ? l : Eval(b.Right, scope);
                }
                var left = Eval(b.Left, scope);
                var right = Eval(b.Right, scope);
                if (b.Op == "~") return JinjaValue.ToStr(left) + JinjaValue.ToStr(right);
                return Arithmetic(b.Op, left, right);
            }
            case CompareExpr c:
            {
                var left = Eval(c.First, scope);
                foreach (var (op, operand) in c.Rest)
                {
                    var right = Eval(operand, scope);
                    bool ok = op switch
                    {
                        "==" => JinjaValue.Equals(left, right),
                        "!=" => !JinjaValue.Equals(left, right),
                        "<" => JinjaValue.Compare(left, right) < 0,
                        "<=" => JinjaValue.Compare(left, right) <= 0,
                        ">" => JinjaValue.Compare(left, right) > 0,
                        ">=" => JinjaValue.Compare(left, right) >= 0,
                        "in" => JinjaValue.Contains(right, left),
                        _ => !JinjaValue.Contains(right, left),
                    };
                    if (!ok) return false;
                    left = right;
                }
                return true;
            }
            case CondExpr c:
                return JinjaValue.IsTruthy(Eval(c.Condition, scope)) ? Eval(c.Then, scope)
                    : c.Else != null ? Eval(c.Else, scope) : new Undefined("else branch");
            default:
                throw new JinjaRuntimeError($"unsupported expression {e.GetType().Name}");
        }
    }

    private static JinjaRuntimeError Undef(Undefined u) => new($"'{u.Name}' is undefined");

    /// <summary>Jinja's getattr: attributes (methods) first, then items; anything missing is Undefined.</summary>
    public static object? GetAttribute(object? target, string name)
    {
        switch (target)
        {
            case OrderedDictionary<string, object?> d:
                if (d.TryGetValue(name, out var v)) return JinjaMethods.Bind(d, name) ?? v;
                return (object?)JinjaMethods.Bind(d, name) ?? new Undefined(name);
            case JinjaNamespace ns:
                return ns.Attributes.TryGetValue(name, out var nv) ? nv : new Undefined(name);
            case LoopInfo loop:
                return loop.Get(name);
            case Undefined u:
                throw new JinjaRuntimeError($"'{u.Name}' is undefined (cannot read its attribute '{name}')");
            default:
                return (object?)JinjaMethods.Bind(target, name) ?? new Undefined(name);
        }
    }

    /// <summary>Jinja's getitem: items first, then attributes; out-of-range or missing is Undefined.</summary>
    public static object? GetItem(object? target, object? key)
    {
        switch (target)
        {
            case List<object?> l when key is long or bool:
            {
                long i = (long)JinjaValue.ToDouble(key);
                if (i < 0) i += l.Count;
                return i >= 0 && i < l.Count ? l[(int)i] : new Undefined($"[{key}]");
            }
            case string s when key is long or bool:
            {
                long i = (long)JinjaValue.ToDouble(key);
                if (i < 0) i += s.Length;
                return i >= 0 && i < s.Length ? s[(int)i].ToString() : new Undefined($"[{key}]");
            }
            case OrderedDictionary<string, object?> d:
            {
                string k = JinjaValue.ToStr(key);
                if (key is string or long && d.TryGetValue(k, out var v)) return v;
                return key is string ks ? GetAttribute(d, ks) is var a && a is not Undefined ? a : new Undefined(ks) : new Undefined(k);
            }
            case Undefined u:
                throw new JinjaRuntimeError($"'{u.Name}' is undefined (cannot index it with {JinjaValue.Repr(key)})");
            default:
                return key is string name ? GetAttribute(target, name) : new Undefined($"[{JinjaValue.Repr(key)}]");
        }
    }

    private static object? Slice(object? target, object? start, object? stop, object? step)
    {
        long st = step == null ? 1 : (long)JinjaValue.ToDouble(step);
        if (st == 0) throw new JinjaRuntimeError("slice step cannot be zero");
        List<object?>? list = target as List<object?>;
        string? str = target as string;
        if (list == null && str == null)
        {
            if (target is Undefined u) throw Undef(u);
            throw new JinjaRuntimeError($"cannot slice {JinjaValue.TypeName(target)}");
        }
        int n = list?.Count ?? str!.Length;
        long Norm(object? v, long def)
        {
            if (v == null) return def;
            long x = (long)JinjaValue.ToDouble(v);
            if (x < 0) x += n;
            return st > 0 ? Math.Clamp(x, 0, n) : Math.Clamp(x, -1, n - 1);
        }
        long a = Norm(start, st > 0 ? 0 : n - 1), b = Norm(stop, st > 0 ? n : -1);
        var idx = new List<int>();
        if (st > 0) for (long i = a; i < b; i += st) idx.Add((int)i);
        else for (long i = a; i > b; i += st) idx.Add((int)i);
        if (list != null) return idx.Select(i => list[i]).ToList();
        var sb = new StringBuilder(idx.Count);
        foreach (int i in idx) sb.Append(str![i]);
        return sb.ToString();
    }

    /// <summary>Python arithmetic: <c>+</c> on numbers, strings and lists; <c>* / // % **</c> on numbers (string/list repetition by int).</summary>
    public static object? Arithmetic(string op, object? a, object? b)
    {
        if (a is Undefined ua) throw Undef(ua);
        if (b is Undefined ub) throw Undef(ub);
        if (JinjaValue.IsNumber(a) && JinjaValue.IsNumber(b))
        {
            bool ints = a is long or bool && b is long or bool;
            long la = ints ? (long)JinjaValue.ToDouble(a) : 0, lb = ints ? (long)JinjaValue.ToDouble(b) : 0;
            double da = JinjaValue.ToDouble(a), db = JinjaValue.ToDouble(b);
            switch (op)
            {
                case "+": return ints ? (object)(la + lb) : da + db;
                case "-": return ints ? (object)(la - lb) : da - db;
                case "*": return ints ? (object)(la * lb) : da * db;
                case "/":
                    if (db == 0) throw new JinjaRuntimeError("division by zero");
                    return da / db;
                case "//":
                    if (db == 0) throw new JinjaRuntimeError("integer division by zero");
                    if (ints) { long q = la / lb; return la % lb != 0 && (la < 0) != (lb < 0) ? (object)(q - 1) : q; }
                    return Math.Floor(da / db);
                case "%":
                    if (db == 0) throw new JinjaRuntimeError("modulo by zero");
                    if (ints) { long r = la % lb; return r != 0 && (r < 0) != (lb < 0) ? (object)(r + lb) : r; }
                    { double r = da % db; return r != 0 && (r < 0) != (db < 0) ? (object)(r + db) : r; }
                case "**":
                    if (ints && lb >= 0) { long r = 1; for (long i = 0; i < lb; i++) r *= la; return r; }
                    return Math.Pow(da, db);
            }
        }
        if (op == "+")
        {
            if (a is string sa && b is string sb) return sa + sb;
            if (a is List<object?> la2 && b is List<object?> lb2) return la2.Concat(lb2).ToList();
        }
        if (op == "*")
        {
            if (a is string s && b is long n) return Repeat(s, n);
            if (a is long n2 && b is string s2) return Repeat(s2, n2);
            if (a is List<object?> l && b is long n3)
            {
                if (n3 > 0 && (double)l.Count * n3 > MaxStringLength) throw new JinjaRuntimeError("list repetition too large");
                return Enumerable.Repeat(l, (int)Math.Max(0, n3)).SelectMany(x => x).ToList();
            }
        }
        if (op == "%" && a is string fmt) return PercentFormat(fmt, b);
        throw new JinjaRuntimeError($"unsupported operand type(s) for {op}: '{JinjaValue.TypeName(a)}' and '{JinjaValue.TypeName(b)}'");
    }

    private static string Repeat(string s, long n)
    {
        if (n <= 0) return "";
        if ((double)s.Length * n > MaxStringLength) throw new JinjaRuntimeError($"string repetition would make {(double)s.Length * n:F0} characters");
        return string.Concat(Enumerable.Repeat(s, (int)n));
    }

    private static string PercentFormat(string fmt, object? args)
    {
        var list = args as List<object?> ?? [args];
        var sb = new StringBuilder();
        int k = 0;
        for (int i = 0; i < fmt.Length; i++)
        {
            if (fmt[i] != '%' || i + 1 >= fmt.Length) { sb.Append(fmt[i]); continue; }
            char c = fmt[++i];
            if (c == '%') { sb.Append('%'); continue; }
            if (k >= list.Count) throw new JinjaRuntimeError("not enough arguments for format string");
            var v = list[k++];
            sb.Append(c switch
            {
                's' => JinjaValue.ToStr(v),
                'r' => JinjaValue.Repr(v),
                'd' or 'i' => ((long)JinjaValue.ToDouble(v)).ToString(CultureInfo.InvariantCulture),
                'f' => JinjaValue.ToDouble(v).ToString("F6", CultureInfo.InvariantCulture),
                _ => throw new JinjaRuntimeError($"unsupported format character '{c}'"),
            });
        }
        return sb.ToString();
    }
}
