using System.Text;

namespace QuantServe.Api.Serving;

/// <summary>
/// Finds OpenAI stop sequences in generated text as it streams, across token boundaries. Text that could still be the
/// start of a stop sequence is held back until the next piece decides it, so a stop sequence is never emitted — not
/// even partly — and text before it is never lost.
/// </summary>
public sealed class StopSequenceMatcher
{
    private readonly string[] _stops;
    private readonly StringBuilder _pending = new();

    /// <summary>Creates a matcher for <paramref name="stops"/> (empty = never stops).</summary>
    public StopSequenceMatcher(IReadOnlyList<string>? stops) => _stops = stops?.Where(s => s.Length > 0).ToArray() ?? [];

    /// <summary>Whether a stop sequence has been found; nothing more is emitted after it.</summary>
    public bool Stopped { get; private set; }

    /// <summary>Characters emitted so far (the length of the final text).</summary>
    public int EmittedLength { get; private set; }

    /// <summary>Adds <paramref name="piece"/> and returns the text now known to precede any stop sequence.</summary>
    public string Push(string piece)
    {
        if (Stopped || piece.Length == 0) return "";
        if (_stops.Length == 0) return Emit(piece);
        _pending.Append(piece);
        string text = _pending.ToString();
        int cut = FirstStop(text);
        int hold = 0;
        foreach (string s in _stops)
            for (int k = Math.Min(s.Length - 1, text.Length); k > hold; k--)
                if (text.AsSpan(text.Length - k).SequenceEqual(s.AsSpan(0, k)))
                {
                    hold = k;
                    break;
                }
        // A stop found here wins unless a longer one could still complete from an earlier position (the held suffix
        // starts before the match): the earliest-starting stop decides, as in the whole text.
        if (cut >= 0 && cut <= text.Length - hold)
        {
            Stopped = true;
            _pending.Clear();
            return Emit(text[..cut]);
        }
        _pending.Clear();
        _pending.Append(text, text.Length - hold, hold);
        return Emit(text[..^hold]);
    }

    private int FirstStop(string text)
    {
        int cut = -1;
        foreach (string s in _stops)
        {
            int i = text.IndexOf(s, StringComparison.Ordinal);
            if (i >= 0 && (cut < 0 || i < cut)) cut = i;
        }
        return cut;
    }

    /// <summary>The held-back text at the end of generation, up to a stop sequence it may contain (then <see cref="Stopped"/> is set).</summary>
    public string Flush()
    {
        if (Stopped) return "";
        string rest = _pending.ToString();
        _pending.Clear();
        // Held text may contain a complete stop that waited for a longer, earlier-starting one that never completed.
        int cut = FirstStop(rest);
        if (cut < 0) return Emit(rest);
        Stopped = true;
        return Emit(rest[..cut]);
    }

    private string Emit(string s)
    {
        EmittedLength += s.Length;
        return s;
    }
}
