using System.Globalization;
using System.Text;

namespace QuantServe.Engine.Tokenization.ChatTemplates;

/// <summary>
/// The <c>tojson</c> filter as Hugging Face defines it: Python's <c>json.dumps(x, ensure_ascii=False, indent=indent,
/// separators=separators, sort_keys=sort_keys)</c>. Without indent items are separated by <c>", "</c> and keys by
/// <c>": "</c>; with indent every item goes on its own line and the item separator is <c>","</c>. Only <c>"</c>,
/// <c>\</c> and control characters are escaped (non-ASCII text is kept).
/// </summary>
internal static class JinjaJson
{
    public static string Serialize(object? value, int? indent, string? itemSeparator = null, string? keySeparator = null, bool sortKeys = false)
    {
        var sb = new StringBuilder();
        string items = itemSeparator ?? (indent == null ? ", " : ",");
        string keys = keySeparator ?? ": ";
        Write(sb, value, indent, 0, items, keys, sortKeys);
        return sb.ToString();
    }

    private static void Write(StringBuilder sb, object? v, int? indent, int level, string items, string keys, bool sortKeys)
    {
        if (level > 500) throw new JinjaRuntimeError("value nested more than 500 levels deep (a list or dict containing itself?)");
        switch (v)
        {
            case null or Undefined: sb.Append("null"); return;
            case bool b: sb.Append(b ? "true" : "false"); return;
            case long l: sb.Append(l.ToString(CultureInfo.InvariantCulture)); return;
            case double d:
                sb.Append(double.IsNaN(d) ? "NaN" : double.IsPositiveInfinity(d) ? "Infinity" : double.IsNegativeInfinity(d) ? "-Infinity" : JinjaValue.FormatFloat(d));
                return;
            case string s: WriteString(sb, s); return;
            case List<object?> list:
                if (list.Count == 0) { sb.Append("[]"); return; }
                sb.Append('[');
                for (int i = 0; i < list.Count; i++)
                {
                    if (i > 0) sb.Append(items);
                    NewLine(sb, indent, level + 1);
                    Write(sb, list[i], indent, level + 1, items, keys, sortKeys);
                }
                NewLine(sb, indent, level);
                sb.Append(']');
                return;
            case OrderedDictionary<string, object?> dict:
                if (dict.Count == 0) { sb.Append("{}"); return; }
                sb.Append('{');
                IEnumerable<KeyValuePair<string, object?>> entries = sortKeys ? dict.OrderBy(kv => kv.Key, StringComparer.Ordinal) : dict;
                bool first = true;
                foreach (var kv in entries)
                {
                    if (!first) sb.Append(items);
                    first = false;
                    NewLine(sb, indent, level + 1);
                    WriteString(sb, kv.Key);
                    sb.Append(keys);
                    Write(sb, kv.Value, indent, level + 1, items, keys, sortKeys);
                }
                NewLine(sb, indent, level);
                sb.Append('}');
                return;
            case JinjaNamespace ns:
                var asDict = new OrderedDictionary<string, object?>(ns.Attributes, StringComparer.Ordinal);
                Write(sb, asDict, indent, level, items, keys, sortKeys);
                return;
            default:
                throw new JinjaRuntimeError($"Object of type {JinjaValue.TypeName(v)} is not JSON serializable");
        }
    }

    private static void NewLine(StringBuilder sb, int? indent, int level)
    {
        if (indent == null) return;
        sb.Append('\n').Append(' ', indent.Value * level);
    }

    private static void WriteString(StringBuilder sb, string s)
    {
        sb.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (c < 0x20) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }
}
