using System.Text.Json;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tokenization;

namespace QuantServe.Engine.Quantization.Calibration;

/// <summary>
/// Calibration token windows for activation statistics: the user's text (plain text, or JSONL with one
/// <c>{"text": ...}</c> object per line) tokenized with the model's own tokenizer and cut into up to
/// <see cref="Samples"/> windows of <see cref="SequenceLength"/> tokens, each starting with BOS when the tokenizer uses one.
/// The text is cut into consecutive non-overlapping windows and <see cref="Samples"/> of them are taken at evenly spaced
/// positions (window <c>⌊s·M/N⌋</c> of M for sample s of N), so that calibration covers the whole file. JSONL documents are joined with a newline so that short documents still fill windows.
/// </summary>
public sealed class CalibrationSet
{
    /// <summary>Default number of windows (llama.cpp / AutoGPTQ practice).</summary>
    public const int DefaultSamples = 128;

    /// <summary>Default window length in tokens.</summary>
    public const int DefaultSequenceLength = 512;

    private CalibrationSet(string source, IReadOnlyList<int[]> windows, int length)
    {
        Source = source;
        Windows = windows;
        SequenceLength = length;
    }

    /// <summary>Where the text came from.</summary>
    public string Source { get; }

    /// <summary>The token windows, each exactly <see cref="SequenceLength"/> tokens.</summary>
    public IReadOnlyList<int[]> Windows { get; }

    /// <summary>Number of windows.</summary>
    public int Samples => Windows.Count;

    /// <summary>Tokens per window.</summary>
    public int SequenceLength { get; }

    /// <summary>Total calibration tokens.</summary>
    public long TokenCount => (long)Samples * SequenceLength;

    /// <summary>
    /// Reads <paramref name="path"/> (JSONL when its extension is <c>.jsonl</c> or its first non-blank character is '{')
    /// and tokenizes it. <paramref name="sequenceLength"/> is capped at <paramref name="contextLength"/>; the text must
    /// yield at least one full window.
    /// </summary>
    public static CalibrationSet Load(string path, Tokenizer tokenizer, int contextLength,
        int samples = DefaultSamples, int sequenceLength = DefaultSequenceLength)
    {
        return FromText(ReadText(path), tokenizer, contextLength, samples, sequenceLength, path);
    }

    /// <summary>The text of a calibration file: the file itself, or its JSONL documents joined with newlines.</summary>
    public static string ReadText(string path)
    {
        if (!File.Exists(path)) throw new ModelLoadException(path, "no such calibration file");
        string raw = File.ReadAllText(path);
        return LooksLikeJsonl(path, raw) ? JoinJsonl(path, raw) : raw;
    }

    /// <summary>Tokenizes <paramref name="text"/> into windows (see <see cref="Load"/>).</summary>
    public static CalibrationSet FromText(string text, Tokenizer tokenizer, int contextLength,
        int samples = DefaultSamples, int sequenceLength = DefaultSequenceLength, string source = "<text>")
    {
        if (samples <= 0) throw new ArgumentOutOfRangeException(nameof(samples), samples, "must be positive");
        if (sequenceLength < 2) throw new ArgumentOutOfRangeException(nameof(sequenceLength), sequenceLength, "must be at least 2");
        int length = Math.Min(sequenceLength, contextLength);
        bool bos = tokenizer.AddBosByDefault && tokenizer.BosId >= 0;
        int body = bos ? length - 1 : length;
        int[] tokens = tokenizer.Encode(text, addBos: false);
        int available = tokens.Length / body;
        int count = Math.Min(samples, available);
        if (count == 0)
            throw new ModelLoadException(source, $"calibration text has {tokens.Length} tokens, fewer than one window of {body}");
        var windows = new List<int[]>(count);
        for (int s = 0; s < count; s++)
        {
            var w = new int[length];
            int at = 0;
            if (bos) w[at++] = tokenizer.BosId;
            // Windows spread evenly over the whole text: a long file's later parts are as representative as its start.
            long slot = (long)s * available / count;
            Array.Copy(tokens, slot * body, w, at, body);
            windows.Add(w);
        }
        return new CalibrationSet(source, windows, length);
    }

    private static bool LooksLikeJsonl(string path, string raw)
    {
        if (Path.GetExtension(path).Equals(".jsonl", StringComparison.OrdinalIgnoreCase)) return true;
        foreach (char c in raw)
            if (!char.IsWhiteSpace(c)) return c == '{';
        return false;
    }

    private static string JoinJsonl(string path, string raw)
    {
        var docs = new List<string>();
        int lineNo = 0;
        foreach (var line in raw.Split('\n'))
        {
            lineNo++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            try
            {
                using var doc = JsonDocument.Parse(line);
                if (doc.RootElement.ValueKind != JsonValueKind.Object
                    || !doc.RootElement.TryGetProperty("text", out var t) || t.ValueKind != JsonValueKind.String)
                    throw new ModelLoadException(path, $"line {lineNo}: expected an object with a string \"text\" field");
                docs.Add(t.GetString()!);
            }
            catch (JsonException e)
            {
                throw new ModelLoadException(path, $"line {lineNo}: invalid JSON ({e.Message})");
            }
        }
        if (docs.Count == 0) throw new ModelLoadException(path, "the JSONL file holds no documents");
        return string.Join('\n', docs);
    }
}
