using System.Globalization;
using System.Text;

namespace QuantServe.Engine.Tokenization.ChatTemplates;

/// <summary>Jinja's built-in filters and tests that chat templates use (Hugging Face's <c>tojson</c> variant).</summary>
internal static class JinjaFilters
{
    internal static object? Arg(List<object?> args, Dictionary<string, object?> kwargs, int index, string name, object? fallback)
    {
        if (kwargs.TryGetValue(name, out var v)) return v;
        return index < args.Count ? args[index] : fallback;
    }

    private static string Str(object? v) => JinjaValue.ToStr(v);

    public static object? Apply(string name, object? v, List<object?> args, Dictionary<string, object?> kwargs)
    {
        switch (name)
        {
            case "trim":
            {
                var chars = Arg(args, kwargs, 0, "chars", null);
                return chars is string cs ? Str(v).Trim(cs.ToCharArray()) : JinjaMethods.PyStrip(Str(v), true, true);
            }
            case "upper": return Str(v).ToUpperInvariant();
            case "lower": return Str(v).ToLowerInvariant();
            case "capitalize": { string s = Str(v); return s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant(); }
            case "title": return TitleFilter(Str(v));
            case "length" or "count": return JinjaValue.Length(v);
            case "first": { var l = JinjaValue.Iterate(v); return l.Count > 0 ? l[0] : new Undefined("first"); }
            case "last":
            {
                var l = v is string s ? JinjaValue.Iterate(s) : v as List<object?> ?? JinjaValue.Iterate(v);
                return l.Count > 0 ? l[^1] : new Undefined("last");
            }
            case "join":
            {
                string sep = Str(Arg(args, kwargs, 0, "d", ""));
                var attr = Arg(args, kwargs, 1, "attribute", null);
                var items = JinjaValue.Iterate(v).Select(x => attr == null ? x : JinjaInterpreter.GetAttribute(x, Str(attr)));
                return string.Join(sep, items.Select(Str));
            }
            case "default" or "d":
            {
                var fallback = Arg(args, kwargs, 0, "default_value", "");
                bool boolean = JinjaValue.IsTruthy(Arg(args, kwargs, 1, "boolean", false));
                return v is Undefined || (boolean && !JinjaValue.IsTruthy(v)) ? fallback : v;
            }
            case "tojson":
            {
                var indent = Arg(args, kwargs, 0, "indent", null);
                var separators = Arg(args, kwargs, 1, "separators", null) as List<object?>;
                bool sortKeys = JinjaValue.IsTruthy(Arg(args, kwargs, 2, "sort_keys", false));
                return JinjaJson.Serialize(v, indent == null ? null : (int)JinjaValue.ToDouble(indent),
                    separators is { Count: 2 } ? Str(separators[0]) : null, separators is { Count: 2 } ? Str(separators[1]) : null, sortKeys);
            }
            case "replace":
            {
                string s = Str(v), old = Str(Arg(args, kwargs, 0, "old", "")), repl = Str(Arg(args, kwargs, 1, "new", ""));
                var count = Arg(args, kwargs, 2, "count", null);
                return JinjaMethods.Replace(s, old, repl, count == null ? -1 : (long)JinjaValue.ToDouble(count));
            }
            case "list": return v is List<object?> l0 ? new List<object?>(l0) : new List<object?>(JinjaValue.Iterate(v));
            case "string": return Str(v);
            case "int":
            {
                var fallback = Arg(args, kwargs, 0, "default", 0L);
                return v switch
                {
                    long l => l,
                    double d => (long)Math.Truncate(d),
                    bool b => b ? 1L : 0L,
                    string s when long.TryParse(s.Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long p) => p,
                    string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double p) => (long)Math.Truncate(p),
                    _ => fallback,
                };
            }
            case "float":
            {
                var fallback = Arg(args, kwargs, 0, "default", 0.0);
                return v switch
                {
                    long or double or bool => JinjaValue.ToDouble(v),
                    string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double p) => p,
                    _ => fallback,
                };
            }
            case "abs": return v is long l1 ? (object)Math.Abs(l1) : Math.Abs(JinjaValue.ToDouble(v));
            case "round":
            {
                int precision = (int)JinjaValue.ToDouble(Arg(args, kwargs, 0, "precision", 0L));
                string method = Str(Arg(args, kwargs, 1, "method", "common"));
                double d = JinjaValue.ToDouble(v), f = Math.Pow(10, precision);
                return method switch
                {
                    "ceil" => Math.Ceiling(d * f) / f,
                    "floor" => Math.Floor(d * f) / f,
                    _ => Math.Round(d, Math.Clamp(precision, 0, 15), MidpointRounding.ToEven), // Python's round()
                };
            }
            case "items":
                if (v is Undefined) return new List<object?>();
                if (v is not OrderedDictionary<string, object?> dict) throw new JinjaRuntimeError($"items filter needs a mapping, got {JinjaValue.TypeName(v)}");
                return dict.Select(kv => (object?)new PyTuple { kv.Key, kv.Value }).ToList();
            case "dictsort":
                if (v is not OrderedDictionary<string, object?> dd) throw new JinjaRuntimeError("dictsort filter needs a mapping");
                return dd.OrderBy(kv => kv.Key, StringComparer.OrdinalIgnoreCase).Select(kv => (object?)new PyTuple { kv.Key, kv.Value }).ToList();
            case "reverse":
                if (v is string rs) { var arr = rs.ToCharArray(); Array.Reverse(arr); return new string(arr); }
                { var l = new List<object?>(JinjaValue.Iterate(v)); l.Reverse(); return l; }
            case "sort":
            {
                bool reverse = JinjaValue.IsTruthy(Arg(args, kwargs, 0, "reverse", false));
                var attr = Arg(args, kwargs, 2, "attribute", null);
                var l = new List<object?>(JinjaValue.Iterate(v));
                Func<object?, object?> key = attr == null ? x => x : x => JinjaInterpreter.GetAttribute(x, Str(attr));
                var sorted = l.OrderBy(key, Comparer<object?>.Create(JinjaValue.Compare)).ToList();
                if (reverse) sorted.Reverse();
                return sorted;
            }
            case "unique":
            {
                var result = new List<object?>();
                foreach (var x in JinjaValue.Iterate(v)) if (!result.Any(y => JinjaValue.Equals(x, y))) result.Add(x);
                return result;
            }
            case "min" or "max":
            {
                var l = JinjaValue.Iterate(v);
                if (l.Count == 0) return new Undefined(name);
                var best = l[0];
                foreach (var x in l.Skip(1))
                {
                    int c = JinjaValue.Compare(x, best);
                    if (name == "min" ? c < 0 : c > 0) best = x;
                }
                return best;
            }
            case "sum":
            {
                object? total = Arg(args, kwargs, 1, "start", 0L);
                var attr = Arg(args, kwargs, 0, "attribute", null);
                foreach (var x in JinjaValue.Iterate(v))
                    total = JinjaInterpreter.Arithmetic("+", total, attr == null ? x : JinjaInterpreter.GetAttribute(x, Str(attr)));
                return total;
            }
            case "selectattr" or "rejectattr":
            {
                string attr = Str(Arg(args, kwargs, 0, "attribute", ""));
                bool select = name == "selectattr";
                var result = new List<object?>();
                foreach (var x in JinjaValue.Iterate(v))
                {
                    var a = JinjaInterpreter.GetAttribute(x, attr);
                    bool ok = args.Count > 1 ? Test(Str(args[1]), a, args.Skip(2).ToList()) : JinjaValue.IsTruthy(a);
                    if (ok == select) result.Add(x);
                }
                return result;
            }
            case "select" or "reject":
            {
                bool select = name == "select";
                var result = new List<object?>();
                foreach (var x in JinjaValue.Iterate(v))
                {
                    bool ok = args.Count > 0 ? Test(Str(args[0]), x, args.Skip(1).ToList()) : JinjaValue.IsTruthy(x);
                    if (ok == select) result.Add(x);
                }
                return result;
            }
            case "map":
            {
                var result = new List<object?>();
                if (kwargs.TryGetValue("attribute", out var attr))
                {
                    kwargs.TryGetValue("default", out var def);
                    foreach (var x in JinjaValue.Iterate(v))
                    {
                        var a = JinjaInterpreter.GetAttribute(x, Str(attr));
                        result.Add(a is Undefined && kwargs.ContainsKey("default") ? def : a);
                    }
                    return result;
                }
                if (args.Count == 0) throw new JinjaRuntimeError("map needs a filter name or attribute=");
                string filter = Str(args[0]);
                var rest = args.Skip(1).ToList();
                foreach (var x in JinjaValue.Iterate(v)) result.Add(Apply(filter, x, rest, []));
                return result;
            }
            case "indent":
            {
                var w = Arg(args, kwargs, 0, "width", 4L);
                string pad = w is string ws ? ws : new string(' ', (int)JinjaValue.ToDouble(w));
                bool first = JinjaValue.IsTruthy(Arg(args, kwargs, 1, "first", false));
                bool blank = JinjaValue.IsTruthy(Arg(args, kwargs, 2, "blank", false));
                var lines = Str(v).Split('\n');
                var sb = new StringBuilder();
                for (int i = 0; i < lines.Length; i++)
                {
                    if (i > 0) sb.Append('\n');
                    bool doIndent = (i > 0 || first) && (blank || lines[i].Length > 0);
                    if (doIndent) sb.Append(pad);
                    sb.Append(lines[i]);
                }
                return sb.ToString();
            }
            case "safe": return v;
            case "e" or "escape" or "forceescape":
                return Str(v).Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;").Replace("\"", "&#34;").Replace("'", "&#39;");
            case "wordcount": return (long)Str(v).Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).Length;
            case "batch":
            {
                int size = (int)JinjaValue.ToDouble(Arg(args, kwargs, 0, "linecount", 1L));
                if (size <= 0) throw new JinjaRuntimeError("batch size must be positive");
                return JinjaValue.Iterate(v).Chunk(size).Select(c => (object?)c.ToList()).ToList();
            }
            default: throw new JinjaRuntimeError($"unknown filter '{name}'");
        }
    }

    // Jinja's title filter (unlike str.title): words split at whitespace, '-', '(', '{', '[' and '<'; each word gets
    // its first character upper-cased and the rest lower-cased.
    private static string TitleFilter(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool wordStart = true;
        foreach (char c in s)
        {
            bool sep = char.IsWhiteSpace(c) || c is '-' or '(' or '{' or '[' or '<';
            sb.Append(sep ? c : wordStart ? char.ToUpperInvariant(c) : char.ToLowerInvariant(c));
            wordStart = sep;
        }
        return sb.ToString();
    }

    public static bool Test(string name, object? v, List<object?> args)
    {
        object? A(int i) => i < args.Count ? args[i] : throw new JinjaRuntimeError($"test '{name}' needs an argument");
        switch (name)
        {
            case "defined": return v is not Undefined;
            case "undefined": return v is Undefined;
            case "none": return v == null;
            case "string": return v is string;
            case "number": return v is long or double;
            case "integer": return v is long;
            case "float": return v is double;
            case "boolean": return v is bool;
            case "true": return v is true;
            case "false": return v is false;
            case "mapping": return v is OrderedDictionary<string, object?> || v is JinjaNamespace;
            case "iterable": return v is string or List<object?> or OrderedDictionary<string, object?> or Undefined;
            case "sequence": return v is string or List<object?> or OrderedDictionary<string, object?>;
            case "callable": return v is JinjaFunction;
            case "odd": return v is long lo && Math.Abs(lo % 2) == 1;
            case "even": return v is long le && le % 2 == 0;
            case "divisibleby": return (long)JinjaValue.ToDouble(v) % (long)JinjaValue.ToDouble(A(0)) == 0;
            case "eq" or "equalto" or "==": return JinjaValue.Equals(v, A(0));
            case "ne" or "!=": return !JinjaValue.Equals(v, A(0));
            case "lt" or "lessthan" or "<": return JinjaValue.Compare(v, A(0)) < 0;
            case "le" or "<=": return JinjaValue.Compare(v, A(0)) <= 0;
            case "gt" or "greaterthan" or ">": return JinjaValue.Compare(v, A(0)) > 0;
            case "ge" or ">=": return JinjaValue.Compare(v, A(0)) >= 0;
            case "in": return JinjaValue.Contains(A(0), v);
            case "sameas": return ReferenceEquals(v, A(0)) || (v == null && A(0) == null) || (v is bool b && A(0) is bool b2 && b == b2);
            case "lower": return v is string sl && sl == sl.ToLowerInvariant();
            case "upper": return v is string su && su == su.ToUpperInvariant();
            case "escaped": return false;
            default: throw new JinjaRuntimeError($"unknown test '{name}'");
        }
    }
}
