using System.Globalization;
using System.Text;

namespace QuantServe.Engine.Tokenization.ChatTemplates;

/// <summary>
/// A parsed Jinja template (the subset chat templates use), configured as Hugging Face renders chat templates:
/// trim_blocks and lstrip_blocks on, no autoescaping, Python semantics for values, Undefined that renders empty.
/// Globals: <c>range</c>, <c>namespace</c>, <c>dict</c>, <c>raise_exception(msg)</c> (throws
/// <see cref="JinjaException"/> with <see cref="JinjaException.RaisedByTemplate"/>) and <c>strftime_now(format)</c>.
/// Parsing happens once in the constructor; <see cref="Render"/> is thread-safe.
/// </summary>
public sealed class JinjaTemplate
{
    private readonly List<Node> _nodes;

    /// <summary>Parses <paramref name="source"/>; syntax errors throw <see cref="JinjaException"/> with line and column.</summary>
    public JinjaTemplate(string source)
    {
        ArgumentNullException.ThrowIfNull(source);
        Source = source;
        _nodes = JinjaParser.Parse(source);
    }

    /// <summary>The template text.</summary>
    public string Source { get; }

    /// <summary>Renders with <paramref name="variables"/> (strings, numbers, bools, lists, dictionaries and
    /// System.Text.Json values are converted to template values). <paramref name="clock"/> feeds <c>strftime_now</c>.</summary>
    public string Render(IReadOnlyDictionary<string, object?> variables, TimeProvider? clock = null)
    {
        var globals = new Scope(null);
        var time = clock ?? TimeProvider.System;
        globals.Set("range", new JinjaFunction("range", Range));
        globals.Set("namespace", new JinjaFunction("namespace", Namespace));
        globals.Set("dict", new JinjaFunction("dict", (a, k) =>
        {
            var d = a.Count > 0 && a[0] is OrderedDictionary<string, object?> src
                ? new OrderedDictionary<string, object?>(src, StringComparer.Ordinal) : new OrderedDictionary<string, object?>(StringComparer.Ordinal);
            foreach (var kv in k) d[kv.Key] = kv.Value;
            return d;
        }));
        globals.Set("raise_exception", new JinjaFunction("raise_exception", (a, _) =>
            throw new TemplateRaised(a.Count > 0 ? JinjaValue.ToStr(a[0]) : "raise_exception called")));
        globals.Set("strftime_now", new JinjaFunction("strftime_now", (a, _) =>
            Strftime(time.GetLocalNow().DateTime, a.Count > 0 ? JinjaValue.ToStr(a[0]) : "%Y-%m-%d")));
        var scope = new Scope(globals);
        foreach (var kv in variables) scope.Set(kv.Key, JinjaValue.From(kv.Value));
        return new JinjaInterpreter(Source).Render(_nodes, scope);
    }

    private static object? Range(List<object?> a, Dictionary<string, object?> _)
    {
        long start = 0, stop, step = 1;
        if (a.Count == 1) stop = (long)JinjaValue.ToDouble(a[0]);
        else if (a.Count is 2 or 3)
        {
            start = (long)JinjaValue.ToDouble(a[0]);
            stop = (long)JinjaValue.ToDouble(a[1]);
            if (a.Count == 3) step = (long)JinjaValue.ToDouble(a[2]);
        }
        else throw new JinjaRuntimeError($"range expected 1 to 3 arguments, got {a.Count}");
        if (step == 0) throw new JinjaRuntimeError("range() step must not be zero");
        long count = step > 0 ? Math.Max(0, (stop - start + step - 1) / step) : Math.Max(0, (start - stop - step - 1) / -step);
        if (count > 1_000_000) throw new JinjaRuntimeError($"range of {count} items is too long");
        var l = new List<object?>((int)count);
        for (long i = 0; i < count; i++) l.Add(start + i * step);
        return l;
    }

    private static object? Namespace(List<object?> a, Dictionary<string, object?> k)
    {
        var ns = new JinjaNamespace();
        if (a.Count > 0 && a[0] is OrderedDictionary<string, object?> init)
            foreach (var kv in init) ns.Attributes[kv.Key] = kv.Value;
        foreach (var kv in k) ns.Attributes[kv.Key] = kv.Value;
        return ns;
    }

    /// <summary>Python's <c>strftime</c> for the directives chat templates use (C locale names).</summary>
    internal static string Strftime(DateTime t, string format)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        for (int i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 >= format.Length) { sb.Append(format[i]); continue; }
            char c = format[++i];
            sb.Append(c switch
            {
                'd' => t.Day.ToString("00", inv),
                'e' => t.Day.ToString(inv).PadLeft(2),
                'm' => t.Month.ToString("00", inv),
                'Y' => t.Year.ToString("0000", inv),
                'y' => (t.Year % 100).ToString("00", inv),
                'b' or 'h' => inv.DateTimeFormat.GetAbbreviatedMonthName(t.Month),
                'B' => inv.DateTimeFormat.GetMonthName(t.Month),
                'a' => inv.DateTimeFormat.GetAbbreviatedDayName(t.DayOfWeek),
                'A' => inv.DateTimeFormat.GetDayName(t.DayOfWeek),
                'H' => t.Hour.ToString("00", inv),
                'I' => ((t.Hour + 11) % 12 + 1).ToString("00", inv),
                'p' => t.Hour < 12 ? "AM" : "PM",
                'M' => t.Minute.ToString("00", inv),
                'S' => t.Second.ToString("00", inv),
                'j' => t.DayOfYear.ToString("000", inv),
                'w' => ((int)t.DayOfWeek).ToString(inv),
                'F' => t.ToString("yyyy-MM-dd", inv),
                'T' => t.ToString("HH:mm:ss", inv),
                '%' => "%",
                _ => "%" + c,
            });
        }
        return sb.ToString();
    }
}
