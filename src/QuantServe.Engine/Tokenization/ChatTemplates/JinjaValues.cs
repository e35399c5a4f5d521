using System.Collections;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace QuantServe.Engine.Tokenization.ChatTemplates;

/// <summary>Jinja's default Undefined: renders as empty, is falsy, iterates as empty, and attribute access chains.</summary>
internal sealed class Undefined(string name)
{
    public string Name { get; } = name;
}

/// <summary>The object <c>namespace()</c> returns: attributes that <c>{% set ns.x = ... %}</c> can change from inside loops.</summary>
internal sealed class JinjaNamespace
{
    public OrderedDictionary<string, object?> Attributes { get; } = new(StringComparer.Ordinal);
}

/// <summary>A callable value: globals (<c>range</c>, <c>namespace</c>, ...), bound methods and macros.</summary>
internal sealed class JinjaFunction(string name, Func<List<object?>, Dictionary<string, object?>, object?> invoke)
{
    public string Name { get; } = name;
    public object? Invoke(List<object?> args, Dictionary<string, object?> kwargs) => invoke(args, kwargs);
}

/// <summary>A Python tuple: behaves as a list, prints as <c>(a, b)</c>.</summary>
internal sealed class PyTuple : List<object?>
{
    public PyTuple() { }
    public PyTuple(IEnumerable<object?> items) : base(items) { }
}

/// <summary>The <c>loop</c> variable inside <c>{% for %}</c>.</summary>
internal sealed class LoopInfo(List<object?> items)
{
    public List<object?> Items { get; } = items;
    public int Index0 { get; set; }

    public object? Get(string name) => name switch
    {
        "index" => (long)Index0 + 1,
        "index0" => (long)Index0,
        "revindex" => (long)(Items.Count - Index0),
        "revindex0" => (long)(Items.Count - Index0 - 1),
        "first" => Index0 == 0,
        "last" => Index0 == Items.Count - 1,
        "length" => (long)Items.Count,
        "previtem" => Index0 > 0 ? Items[Index0 - 1] : new Undefined("loop.previtem"),
        "nextitem" => Index0 + 1 < Items.Count ? Items[Index0 + 1] : new Undefined("loop.nextitem"),
        "depth" => 1L,
        "depth0" => 0L,
        "cycle" => new JinjaFunction("loop.cycle", (a, _) => a.Count == 0 ? null : a[Index0 % a.Count]),
        _ => new Undefined("loop." + name),
    };
}

/// <summary>Python/Jinja value semantics over .NET objects: null = none, bool, long, double, string,
/// <see cref="List{T}"/> of object (lists and tuples), <see cref="OrderedDictionary{TKey,TValue}"/> (dicts).</summary>
internal static class JinjaValue
{
    /// <summary>Converts caller data (strings, numbers, enumerables, dictionaries, System.Text.Json values) to template values.</summary>
    public static object? From(object? v)
    {
        switch (v)
        {
            case null: return null;
            case string or bool or long or double or Undefined or JinjaNamespace or JinjaFunction or LoopInfo: return v;
            case int i: return (long)i;
            case short s: return (long)s;
            case byte b: return (long)b;
            case uint ui: return (long)ui;
            case float f: return (double)f;
            case decimal m: return (double)m;
            case char c: return c.ToString();
            case List<object?> l: return l;
            case OrderedDictionary<string, object?> d: return d;
            case JsonElement e: return FromJson(e);
            case JsonNode n: return FromJson(JsonSerializer.SerializeToElement(n));
            case IDictionary<string, object?> gd:
            {
                var d = new OrderedDictionary<string, object?>(StringComparer.Ordinal);
                foreach (var kv in gd) d[kv.Key] = From(kv.Value);
                return d;
            }
            case IReadOnlyDictionary<string, object?> rd:
            {
                var d = new OrderedDictionary<string, object?>(StringComparer.Ordinal);
                foreach (var kv in rd) d[kv.Key] = From(kv.Value);
                return d;
            }
            case IDictionary nd:
            {
                var d = new OrderedDictionary<string, object?>(StringComparer.Ordinal);
                foreach (DictionaryEntry kv in nd) d[ToStr(From(kv.Key))] = From(kv.Value);
                return d;
            }
            case IEnumerable en:
            {
                var l = new List<object?>();
                foreach (var x in en) l.Add(From(x));
                return l;
            }
            default: return v.ToString();
        }
    }

    private static object? FromJson(JsonElement e)
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.Object:
                var d = new OrderedDictionary<string, object?>(StringComparer.Ordinal);
                foreach (var p in e.EnumerateObject()) d[p.Name] = FromJson(p.Value);
                return d;
            case JsonValueKind.Array:
                var l = new List<object?>();
                foreach (var x in e.EnumerateArray()) l.Add(FromJson(x));
                return l;
            case JsonValueKind.String: return e.GetString();
            case JsonValueKind.Number: return e.TryGetInt64(out long n) ? (object)n : e.GetDouble();
            case JsonValueKind.True: return true;
            case JsonValueKind.False: return false;
            default: return null;
        }
    }

    public static bool IsTruthy(object? v) => v switch
    {
        null or Undefined => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        List<object?> l => l.Count > 0,
        OrderedDictionary<string, object?> d => d.Count > 0,
        _ => true,
    };

    public static string TypeName(object? v) => v switch
    {
        null => "NoneType",
        Undefined => "Undefined",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        List<object?> => "list",
        OrderedDictionary<string, object?> => "dict",
        JinjaNamespace => "Namespace",
        JinjaFunction => "function",
        LoopInfo => "LoopContext",
        _ => v.GetType().Name,
    };

    /// <summary>Python's <c>str()</c>; Undefined renders as the empty string.</summary>
    public static string ToStr(object? v) => v switch
    {
        string s => s,
        Undefined => "",
        _ => Repr(v),
    };

    /// <summary>Python's <c>repr()</c> (strings quoted), as lists and dicts print their items.</summary>
    public static string Repr(object? v) => Repr(v, 0);

    private const int MaxNesting = 500;

    private static string Repr(object? v, int depth)
    {
        if (depth > MaxNesting) throw new JinjaRuntimeError($"value nested more than {MaxNesting} levels deep (a list or dict containing itself?)");
        switch (v)
        {
            case null: return "None";
            case Undefined: return "";
            case bool b: return b ? "True" : "False";
            case long l: return l.ToString(CultureInfo.InvariantCulture);
            case double d: return FormatFloat(d);
            case string s: return ReprString(s);
            case PyTuple t: return t.Count == 1 ? "(" + Repr(t[0], depth + 1) + ",)" : "(" + string.Join(", ", t.Select(x => Repr(x, depth + 1))) + ")";
            case List<object?> l: return "[" + string.Join(", ", l.Select(x => Repr(x, depth + 1))) + "]";
            case OrderedDictionary<string, object?> d: return "{" + string.Join(", ", d.Select(kv => ReprString(kv.Key) + ": " + Repr(kv.Value, depth + 1))) + "}";
            case JinjaNamespace ns: return "<Namespace " + string.Join(", ", ns.Attributes.Select(kv => kv.Key + "=" + Repr(kv.Value, depth + 1))) + ">";
            case JinjaFunction f: return $"<function {f.Name}>";
            default: return v.ToString() ?? "";
        }
    }

    private static string ReprString(string s)
    {
        char q = s.Contains('\'') && !s.Contains('"') ? '"' : '\'';
        var sb = new StringBuilder(s.Length + 2).Append(q);
        foreach (char c in s)
        {
            switch (c)
            {
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c == q) sb.Append('\\').Append(c);
                    else if (c < 0x20 || c == 0x7f) sb.Append("\\x").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        return sb.Append(q).ToString();
    }

    /// <summary>Python's float repr: shortest round-trip digits, <c>1.0</c> for integral values, exponent form outside 1e-4..1e16.</summary>
    public static string FormatFloat(double d)
    {
        if (double.IsNaN(d)) return "nan";
        if (double.IsPositiveInfinity(d)) return "inf";
        if (double.IsNegativeInfinity(d)) return "-inf";
        if (d == 0) return double.IsNegative(d) ? "-0.0" : "0.0";
        // Shortest round-trip digits and the decimal exponent of the first digit.
        string r = d.ToString("E16", CultureInfo.InvariantCulture);
        for (int p = 0; p < 16; p++)
        {
            string t = d.ToString("E" + p, CultureInfo.InvariantCulture);
            if (double.Parse(t, CultureInfo.InvariantCulture) == d) { r = t; break; }
        }
        int ePos = r.IndexOf('E');
        int exp = int.Parse(r.AsSpan(ePos + 1), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
        string digits = r[..ePos].TrimStart('-').Replace(".", "").TrimEnd('0');
        if (digits.Length == 0) digits = "0";
        string sign = d < 0 ? "-" : "";
        if (exp < -4 || exp >= 16)
        {
            string mant = digits.Length == 1 ? digits : digits[0] + "." + digits[1..];
            return sign + mant + "e" + (exp < 0 ? "-" : "+") + Math.Abs(exp).ToString("00", CultureInfo.InvariantCulture);
        }
        if (exp < 0) return sign + "0." + new string('0', -exp - 1) + digits;
        if (digits.Length <= exp + 1) return sign + digits + new string('0', exp + 1 - digits.Length) + ".0";
        return sign + digits[..(exp + 1)] + "." + digits[(exp + 1)..];
    }

    public static new bool Equals(object? a, object? b) => Equals(a, b, 0);

    private static bool Equals(object? a, object? b, int depth)
    {
        if (depth > MaxNesting) throw new JinjaRuntimeError($"value nested more than {MaxNesting} levels deep (a list or dict containing itself?)");
        if (a is Undefined || b is Undefined) return a is Undefined && b is Undefined;
        if (a == null || b == null) return a == null && b == null;
        if (IsNumber(a) && IsNumber(b)) return ToDouble(a) == ToDouble(b);
        switch (a)
        {
            case string sa: return b is string sb && sa == sb;
            case List<object?> la:
                if (b is not List<object?> lb || la.Count != lb.Count) return false;
                for (int i = 0; i < la.Count; i++) if (!Equals(la[i], lb[i], depth + 1)) return false;
                return true;
            case OrderedDictionary<string, object?> da:
                if (b is not OrderedDictionary<string, object?> db || da.Count != db.Count) return false;
                foreach (var kv in da) if (!db.TryGetValue(kv.Key, out var bv) || !Equals(kv.Value, bv, depth + 1)) return false;
                return true;
            default: return ReferenceEquals(a, b);
        }
    }

    public static bool IsNumber(object? v) => v is long or double or bool;

    public static double ToDouble(object? v) => v switch
    {
        long l => l,
        double d => d,
        bool b => b ? 1 : 0,
        _ => throw new JinjaRuntimeError($"expected a number but got {TypeName(v)}"),
    };

    public static int Compare(object? a, object? b)
    {
        if (IsNumber(a) && IsNumber(b)) return ToDouble(a).CompareTo(ToDouble(b));
        if (a is string sa && b is string sb) return string.CompareOrdinal(sa, sb);
        if (a is List<object?> la && b is List<object?> lb)
        {
            for (int i = 0; i < Math.Min(la.Count, lb.Count); i++)
            {
                int c = Compare(la[i], lb[i]);
                if (c != 0) return c;
            }
            return la.Count.CompareTo(lb.Count);
        }
        throw new JinjaRuntimeError($"cannot compare {TypeName(a)} with {TypeName(b)}");
    }

    /// <summary>What <c>for x in v</c> visits: list items, dict keys, string characters; Undefined is empty.</summary>
    public static List<object?> Iterate(object? v) => v switch
    {
        List<object?> l => l,
        OrderedDictionary<string, object?> d => d.Keys.Cast<object?>().ToList(),
        string s => EnumerateChars(s),
        Undefined => [],
        _ => throw new JinjaRuntimeError($"{TypeName(v)} is not iterable"),
    };

    private static List<object?> EnumerateChars(string s)
    {
        var l = new List<object?>(s.Length);
        for (int i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length) { l.Add(s.Substring(i, 2)); i++; }
            else l.Add(s[i].ToString());
        }
        return l;
    }

    public static long Length(object? v) => v switch
    {
        string s => s.Length,
        List<object?> l => l.Count,
        OrderedDictionary<string, object?> d => d.Count,
        JinjaNamespace ns => ns.Attributes.Count,
        Undefined => 0,
        _ => throw new JinjaRuntimeError($"object of type '{TypeName(v)}' has no length"),
    };

    public static bool Contains(object? container, object? item) => container switch
    {
        string s => item is string sub ? s.Contains(sub, StringComparison.Ordinal)
            : throw new JinjaRuntimeError($"'in <string>' requires a string as left operand, not {TypeName(item)}"),
        List<object?> l => l.Any(x => Equals(x, item)),
        OrderedDictionary<string, object?> d => item is string k && d.ContainsKey(k),
        Undefined => false,
        _ => throw new JinjaRuntimeError($"argument of type '{TypeName(container)}' is not iterable"),
    };
}
