using System.Text;

namespace QuantServe.Engine.Tokenization.ChatTemplates;

/// <summary>Python methods templates call on strings, dicts and lists (<c>content.strip()</c>, <c>tool.items()</c>, ...).</summary>
internal static class JinjaMethods
{
    private static readonly char[] PyWhitespace = [' ', '\t', '\n', '\r', '\f', '\v'];

    public static string PyStrip(string s, bool left, bool right, string? chars = null)
    {
        char[] set = chars?.ToCharArray() ?? PyWhitespace;
        if (left && right) return s.Trim(set);
        return left ? s.TrimStart(set) : s.TrimEnd(set);
    }

    public static string Title(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool prevCased = false;
        foreach (char c in s)
        {
            bool cased = char.IsLetter(c);
            sb.Append(cased ? (prevCased ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c)) : c);
            prevCased = cased;
        }
        return sb.ToString();
    }

    public static string Replace(string s, string old, string repl, long count)
    {
        if (count < 0) return old.Length == 0 ? InsertEverywhere(s, repl) : s.Replace(old, repl, StringComparison.Ordinal);
        var sb = new StringBuilder();
        int pos = 0;
        for (long n = 0; n < count; n++)
        {
            int i = s.IndexOf(old, pos, StringComparison.Ordinal);
            if (i < 0 || old.Length == 0) break;
            sb.Append(s, pos, i - pos).Append(repl);
            pos = i + old.Length;
        }
        return sb.Append(s, pos, s.Length - pos).ToString();
    }

    private static string InsertEverywhere(string s, string repl)
    {
        var sb = new StringBuilder(repl);
        foreach (char c in s) sb.Append(c).Append(repl);
        return sb.ToString();
    }

    /// <summary>The bound method <paramref name="name"/> of <paramref name="target"/>, or null when it has none.</summary>
    public static JinjaFunction? Bind(object? target, string name)
    {
        switch (target)
        {
            case string s: return StringMethod(s, name);
            case OrderedDictionary<string, object?> d: return DictMethod(d, name);
            case List<object?> l: return ListMethod(l, name);
            default: return null;
        }
    }

    private static string S(object? v) => JinjaValue.ToStr(v);
    private static object? A(List<object?> a, int i) => i < a.Count ? a[i] : null;

    private static JinjaFunction? StringMethod(string s, string name) => name switch
    {
        "strip" => new(name, (a, _) => PyStrip(s, true, true, A(a, 0) as string)),
        "lstrip" => new(name, (a, _) => PyStrip(s, true, false, A(a, 0) as string)),
        "rstrip" => new(name, (a, _) => PyStrip(s, false, true, A(a, 0) as string)),
        "upper" => new(name, (_, _) => s.ToUpperInvariant()),
        "lower" => new(name, (_, _) => s.ToLowerInvariant()),
        "title" => new(name, (_, _) => Title(s)),
        "capitalize" => new(name, (_, _) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant()),
        "startswith" => new(name, (a, _) => Prefixes(A(a, 0)).Any(p => s.StartsWith(p, StringComparison.Ordinal))),
        "endswith" => new(name, (a, _) => Prefixes(A(a, 0)).Any(p => s.EndsWith(p, StringComparison.Ordinal))),
        "split" => new(name, (a, k) => Split(s, JinjaFilters.Arg(a, k, 0, "sep", null), JinjaFilters.Arg(a, k, 1, "maxsplit", -1L))),
        "rsplit" => new(name, (a, k) => RSplit(s, JinjaFilters.Arg(a, k, 0, "sep", null), JinjaFilters.Arg(a, k, 1, "maxsplit", -1L))),
        "replace" => new(name, (a, _) => Replace(s, S(A(a, 0)), S(A(a, 1)), a.Count > 2 ? (long)JinjaValue.ToDouble(a[2]) : -1)),
        "find" => new(name, (a, _) => (long)s.IndexOf(S(A(a, 0)), StringComparison.Ordinal)),
        "count" => new(name, (a, _) => CountOf(s, S(A(a, 0)))),
        "join" => new(name, (a, _) => string.Join(s, JinjaValue.Iterate(A(a, 0)).Select(S))),
        "format" => new(name, (a, k) => Format(s, a, k)),
        "isdigit" => new(name, (_, _) => s.Length > 0 && s.All(char.IsDigit)),
        "isalpha" => new(name, (_, _) => s.Length > 0 && s.All(char.IsLetter)),
        "isspace" => new(name, (_, _) => s.Length > 0 && s.All(char.IsWhiteSpace)),
        _ => null,
    };

    private static IEnumerable<string> Prefixes(object? arg) => arg is List<object?> l ? l.Select(S) : [S(arg)];

    private static long CountOf(string s, string sub)
    {
        if (sub.Length == 0) return s.Length + 1;
        long n = 0;
        for (int i = s.IndexOf(sub, StringComparison.Ordinal); i >= 0; i = s.IndexOf(sub, i + sub.Length, StringComparison.Ordinal)) n++;
        return n;
    }

    private static List<object?> Split(string s, object? sep, object? maxsplit)
    {
        long max = maxsplit == null ? -1 : (long)JinjaValue.ToDouble(maxsplit);
        var parts = new List<object?>();
        if (sep is null)
        {
            // Python's whitespace split: runs of whitespace separate, no empty strings.
            int i = 0;
            while (i < s.Length)
            {
                while (i < s.Length && char.IsWhiteSpace(s[i])) i++;
                if (i >= s.Length) break;
                if (max >= 0 && parts.Count == max) { parts.Add(s[i..].TrimEnd(PyWhitespace)); break; }
                int j = i;
                while (j < s.Length && !char.IsWhiteSpace(s[j])) j++;
                parts.Add(s[i..j]);
                i = j;
            }
            return parts;
        }
        string sp = S(sep);
        if (sp.Length == 0) throw new JinjaRuntimeError("empty separator");
        int pos = 0;
        while (max < 0 || parts.Count < max)
        {
            int k = s.IndexOf(sp, pos, StringComparison.Ordinal);
            if (k < 0) break;
            parts.Add(s[pos..k]);
            pos = k + sp.Length;
        }
        parts.Add(s[pos..]);
        return parts;
    }

    private static List<object?> RSplit(string s, object? sep, object? maxsplit)
    {
        long max = maxsplit == null ? -1 : (long)JinjaValue.ToDouble(maxsplit);
        if (max < 0 || sep == null) return Split(s, sep, max < 0 ? null : maxsplit);
        string sp = S(sep);
        var parts = new List<object?>();
        int end = s.Length;
        while (parts.Count < max)
        {
            int k = end - sp.Length < 0 ? -1 : s.LastIndexOf(sp, end - 1, StringComparison.Ordinal);
            if (k < 0 || k + sp.Length > end) break;
            parts.Insert(0, s[(k + sp.Length)..end]);
            end = k;
        }
        parts.Insert(0, s[..end]);
        return parts;
    }

    private static string Format(string s, List<object?> a, Dictionary<string, object?> k)
    {
        var sb = new StringBuilder();
        int auto = 0;
        for (int i = 0; i < s.Length; i++)
        {
            if (s[i] == '{' && i + 1 < s.Length && s[i + 1] == '{') { sb.Append('{'); i++; continue; }
            if (s[i] == '}' && i + 1 < s.Length && s[i + 1] == '}') { sb.Append('}'); i++; continue; }
            if (s[i] == '{')
            {
                int j = s.IndexOf('}', i);
                if (j < 0) throw new JinjaRuntimeError("unmatched '{' in format string");
                string field = s[(i + 1)..j];
                object? v = field.Length == 0 ? A(a, auto++) : int.TryParse(field, out int idx) ? A(a, idx) : k.GetValueOrDefault(field);
                sb.Append(S(v));
                i = j;
                continue;
            }
            sb.Append(s[i]);
        }
        return sb.ToString();
    }

    private static JinjaFunction? DictMethod(OrderedDictionary<string, object?> d, string name) => name switch
    {
        "items" => new(name, (_, _) => d.Select(kv => (object?)new PyTuple { kv.Key, kv.Value }).ToList()),
        "keys" => new(name, (_, _) => d.Keys.Cast<object?>().ToList()),
        "values" => new(name, (_, _) => d.Values.ToList()),
        "get" => new(name, (a, _) => A(a, 0) is string key && d.TryGetValue(key, out var v) ? v : A(a, 1)),
        "copy" => new(name, (_, _) => new OrderedDictionary<string, object?>(d, StringComparer.Ordinal)),
        "update" => new(name, (a, k) =>
        {
            if (A(a, 0) is OrderedDictionary<string, object?> other) foreach (var kv in other) d[kv.Key] = kv.Value;
            foreach (var kv in k) d[kv.Key] = kv.Value;
            return null;
        }),
        _ => null,
    };

    private static JinjaFunction? ListMethod(List<object?> l, string name) => name switch
    {
        "append" => new(name, (a, _) => { l.Add(A(a, 0)); return null; }),
        "extend" => new(name, (a, _) => { l.AddRange(JinjaValue.Iterate(A(a, 0))); return null; }),
        "pop" => new(name, (a, _) =>
        {
            if (l.Count == 0) throw new JinjaRuntimeError("pop from empty list");
            int i = a.Count > 0 ? (int)JinjaValue.ToDouble(a[0]) : -1;
            if (i < 0) i += l.Count;
            if (i < 0 || i >= l.Count) throw new JinjaRuntimeError("pop index out of range");
            var v = l[i];
            l.RemoveAt(i);
            return v;
        }),
        "index" => new(name, (a, _) =>
        {
            int i = l.FindIndex(x => JinjaValue.Equals(x, A(a, 0)));
            return i >= 0 ? (long)i : throw new JinjaRuntimeError($"{JinjaValue.Repr(A(a, 0))} is not in list");
        }),
        "count" => new(name, (a, _) => (long)l.Count(x => JinjaValue.Equals(x, A(a, 0)))),
        _ => null,
    };
}
