using QuantServe.Engine.Models;

namespace QuantServe.Engine.Formats;

/// <summary>
/// Reports JSON that parses but cannot be read as a <see cref="ModelLoadException"/>. System.Text.Json accepts a string
/// escape of an unpaired UTF-16 surrogate (<c>"\ud800"</c>) when parsing and only throws — an
/// <see cref="InvalidOperationException"/> — when the string or property name is decoded, deep inside a reader.
/// </summary>
internal static class JsonGuard
{
    /// <summary>Runs <paramref name="read"/>; a System.Text.Json decoding failure becomes an error about <paramref name="path"/>.</summary>
    public static T Read<T>(string path, Func<T> read)
    {
        try
        {
            return read();
        }
        catch (InvalidOperationException e) when (IsDecodingFailure(e))
        {
            throw new ModelLoadException(path, $"malformed JSON: {e.Message}", e);
        }
    }

    /// <summary>Whether <paramref name="e"/> is System.Text.Json refusing to decode a string it parsed.</summary>
    public static bool IsDecodingFailure(Exception e) =>
        e is InvalidOperationException && e.TargetSite?.DeclaringType?.Assembly == typeof(System.Text.Json.JsonDocument).Assembly;
}
