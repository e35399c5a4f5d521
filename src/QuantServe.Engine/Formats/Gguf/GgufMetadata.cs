using System.Collections;
using System.Globalization;
using QuantServe.Engine.Models;

namespace QuantServe.Engine.Formats.Gguf;

/// <summary>
/// The key/value metadata of a GGUF file, in file order (the order is part of the format: a writer that keeps
/// it reproduces the file byte for byte). Typed getters throw <see cref="ModelLoadException"/> naming the file,
/// the key and what was expected.
/// </summary>
public sealed class GgufMetadata : IEnumerable<KeyValuePair<string, GgufValue>>
{
    private readonly List<KeyValuePair<string, GgufValue>> _entries = new();
    private readonly Dictionary<string, int> _index = new(StringComparer.Ordinal);

    /// <summary>Creates empty metadata; <paramref name="source"/> names the file in error messages.</summary>
    public GgufMetadata(string source = "<new GGUF>") => Source = source;

    /// <summary>The file this metadata came from (for error messages).</summary>
    public string Source { get; }

    /// <summary>Number of entries.</summary>
    public int Count => _entries.Count;

    /// <summary>The keys in file order.</summary>
    public IEnumerable<string> Keys => _entries.Select(e => e.Key);

    /// <summary>Whether <paramref name="key"/> is present.</summary>
    public bool Contains(string key) => _index.ContainsKey(key);

    /// <summary>The value of <paramref name="key"/>, or null.</summary>
    public GgufValue? Find(string key) => _index.TryGetValue(key, out int i) ? _entries[i].Value : null;

    /// <summary>The value of <paramref name="key"/>; throws when it is missing.</summary>
    public GgufValue this[string key] => Find(key) ?? throw Missing(key);

    /// <summary>Sets <paramref name="key"/>: an existing entry keeps its position, a new one is appended.</summary>
    public void Set(string key, GgufValue value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (_index.TryGetValue(key, out int i)) _entries[i] = new(key, value);
        else
        {
            _index[key] = _entries.Count;
            _entries.Add(new(key, value));
        }
    }

    /// <summary>Adds a new entry; false (and nothing changes) when the key already exists.</summary>
    public bool TryAdd(string key, GgufValue value)
    {
        if (_index.ContainsKey(key)) return false;
        Set(key, value);
        return true;
    }

    /// <summary>Removes <paramref name="key"/>; false when it was absent.</summary>
    public bool Remove(string key)
    {
        if (!_index.TryGetValue(key, out int i)) return false;
        _entries.RemoveAt(i);
        _index.Clear();
        for (int j = 0; j < _entries.Count; j++) _index[_entries[j].Key] = j;
        return true;
    }

    /// <summary>A copy (values are immutable and shared).</summary>
    public GgufMetadata Clone(string? source = null)
    {
        var copy = new GgufMetadata(source ?? Source);
        foreach (var e in _entries) copy.Set(e.Key, e.Value);
        return copy;
    }

    // ---- typed getters ----------------------------------------------------------------------------------------

    /// <summary>A string value; throws when missing or not a string.</summary>
    public string GetString(string key) => GetStringOrNull(key) ?? throw Missing(key);

    /// <summary>A string value, or null when missing; throws when present with another type.</summary>
    public string? GetStringOrNull(string key)
    {
        var v = Find(key);
        if (v is null) return null;
        return v.AsString() ?? throw WrongType(key, v, "a string");
    }

    /// <summary>An integer value of any width; throws when missing, not an integer, or beyond int64.</summary>
    public long GetInteger(string key) => GetIntegerOrNull(key) ?? throw Missing(key);

    /// <summary>An integer value, or null when missing; throws when present with another type.</summary>
    public long? GetIntegerOrNull(string key)
    {
        var v = Find(key);
        if (v is null) return null;
        return v.TryGetInteger(out long i) ? i : throw WrongType(key, v, "an integer");
    }

    /// <summary>An integer value that must lie in [<paramref name="min"/>, <paramref name="max"/>]; throws when missing.</summary>
    public int GetInt32(string key, int min = 0, int max = int.MaxValue) =>
        GetInt32OrNull(key, min, max) ?? throw Missing(key);

    /// <summary>An integer value in [<paramref name="min"/>, <paramref name="max"/>], or null when missing.</summary>
    public int? GetInt32OrNull(string key, int min = 0, int max = int.MaxValue)
    {
        long? v = GetIntegerOrNull(key);
        if (v is null) return null;
        if (v < min || v > max) throw new ModelLoadException(Source, $"metadata '{key}' = {v} is out of range [{min}, {max}]");
        return (int)v;
    }

    /// <summary>A float32/float64 (or integer) value as a double; throws when missing or of another type.</summary>
    public double GetFloat(string key) => GetFloatOrNull(key) ?? throw Missing(key);

    /// <summary>A float (or integer) value, or null when missing; throws when present with another type.</summary>
    public double? GetFloatOrNull(string key)
    {
        var v = Find(key);
        if (v is null) return null;
        return v.TryGetFloat(out double d) ? d : throw WrongType(key, v, "a number");
    }

    /// <summary>A bool value; throws when missing or of another type.</summary>
    public bool GetBool(string key) => GetBoolOrNull(key) ?? throw Missing(key);

    /// <summary>A bool value, or null when missing; throws when present with another type.</summary>
    public bool? GetBoolOrNull(string key)
    {
        var v = Find(key);
        if (v is null) return null;
        return v.TryGetBool(out bool b) ? b : throw WrongType(key, v, "a bool");
    }

    /// <summary>An array of strings, or null when missing; throws when present with another type.</summary>
    public string[]? GetStringArrayOrNull(string key)
    {
        var v = Find(key);
        if (v is null) return null;
        return v.AsStringArray() ?? throw WrongType(key, v, "an array of strings");
    }

    /// <summary>An array of float32/float64 as floats, or null when missing; throws when present with another type.</summary>
    public float[]? GetFloatArrayOrNull(string key)
    {
        var v = Find(key);
        if (v is null) return null;
        return v.ToFloat32Array() ?? throw WrongType(key, v, "an array of floats");
    }

    /// <summary>An array of integers (any width) as int64, or null when missing; throws when present with another type.</summary>
    public long[]? GetIntegerArrayOrNull(string key)
    {
        var v = Find(key);
        if (v is null) return null;
        return v.ToInt64Array() ?? throw WrongType(key, v, "an array of integers");
    }

    /// <summary>The type of a value as GGUF names it, e.g. <c>uint32</c> or <c>array[string]</c>.</summary>
    public static string TypeName(GgufValue v) => v.IsArray ? $"array[{Name(v.ElementType)}]" : Name(v.Type);

    private static string Name(GgufValueType t) => t.ToString().ToLower(CultureInfo.InvariantCulture);

    private ModelLoadException Missing(string key) => new(Source, $"metadata key '{key}' is missing");

    private ModelLoadException WrongType(string key, GgufValue v, string expected) =>
        new(Source, $"metadata '{key}' has type {TypeName(v)}, expected {expected}");

    /// <inheritdoc />
    public IEnumerator<KeyValuePair<string, GgufValue>> GetEnumerator() => _entries.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
