using System.Globalization;
using System.Text;

namespace QuantServe.Engine.Tokenization.Text;

/// <summary>
/// Unicode normalization forms NFC, NFD, NFKC and NFKD (UAX #15): full decomposition (canonical, or canonical plus
/// compatibility), canonical ordering of combining marks by combining class, then for the composed forms canonical
/// composition of starter + mark pairs that are not blocked, with Hangul syllables handled algorithmically.
/// Needed because string.Normalize does nothing when the runtime runs with InvariantGlobalization.
/// </summary>
public static class UnicodeNormalization
{
    private const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7;
    private const int LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;

    private static readonly Lazy<Tables> Data = new(Tables.Parse);

    /// <summary>Normalizes <paramref name="text"/> to <paramref name="form"/>.</summary>
    public static string Normalize(string text, NormalizationForm form)
    {
        bool compose = form is NormalizationForm.FormC or NormalizationForm.FormKC;
        bool compatibility = form is NormalizationForm.FormKC or NormalizationForm.FormKD;
        // Below U+00A0 nothing decomposes; below U+0300 everything is already composed and nothing combines.
        int limit = compose && !compatibility ? 0x300 : 0xA0;
        bool trivial = true;
        foreach (char c in text) if (c >= limit) { trivial = false; break; }
        if (trivial) return text;

        var t = Data.Value;
        var cps = new List<int>(text.Length + 8);
        for (int i = 0; i < text.Length;)
        {
            if (Rune.DecodeFromUtf16(text.AsSpan(i), out var rune, out int used) != System.Buffers.OperationStatus.Done)
                rune = new Rune(text[i] >= 0xD800 && text[i] <= 0xDFFF ? 0xFFFD : text[i]);
            i += used == 0 ? 1 : used;
            Decompose(rune.Value, compatibility, t, cps);
        }
        // Canonical ordering: stable insertion sort of each run of non-starters by combining class.
        for (int i = 1; i < cps.Count; i++)
        {
            int cc = t.Class(cps[i]);
            if (cc == 0) continue;
            int j = i;
            while (j > 0 && t.Class(cps[j - 1]) > cc) { (cps[j], cps[j - 1]) = (cps[j - 1], cps[j]); j--; }
        }
        if (compose) Compose(cps, t);
        var sb = new StringBuilder(cps.Count);
        foreach (int cp in cps) sb.Append(char.ConvertFromUtf32(cp));
        return sb.ToString();
    }

    private static void Decompose(int cp, bool compatibility, Tables t, List<int> output)
    {
        if (cp >= SBase && cp < SBase + SCount)
        {
            int s = cp - SBase;
            output.Add(LBase + s / NCount);
            output.Add(VBase + s % NCount / TCount);
            if (s % TCount != 0) output.Add(TBase + s % TCount);
            return;
        }
        if (t.Canonical.TryGetValue(cp, out var parts) || compatibility && t.Compatibility.TryGetValue(cp, out parts))
        {
            foreach (int p in parts) Decompose(p, compatibility, t, output);
            return;
        }
        output.Add(cp);
    }

    private static void Compose(List<int> cps, Tables t)
    {
        if (cps.Count == 0) return;
        int starterAt = t.Class(cps[0]) == 0 ? 0 : -1;
        int lastClass = starterAt == 0 ? 0 : 256;
        int write = 1;
        for (int read = 1; read < cps.Count; read++)
        {
            int cp = cps[read];
            int cc = t.Class(cp);
            if (starterAt >= 0 && (lastClass < cc || lastClass == 0 && write - 1 == starterAt) && TryCompose(cps[starterAt], cp, t, out int composed))
            {
                cps[starterAt] = composed;
                continue;
            }
            if (cc == 0) starterAt = write;
            lastClass = cc;
            cps[write++] = cp;
        }
        cps.RemoveRange(write, cps.Count - write);
    }

    private static bool TryCompose(int first, int second, Tables t, out int composed)
    {
        if (first >= LBase && first < LBase + LCount && second >= VBase && second < VBase + VCount)
        {
            composed = SBase + ((first - LBase) * VCount + second - VBase) * TCount;
            return true;
        }
        if (first >= SBase && first < SBase + SCount && (first - SBase) % TCount == 0 && second > TBase && second < TBase + TCount)
        {
            composed = first + second - TBase;
            return true;
        }
        return t.Compositions.TryGetValue((long)first << 21 | (uint)second, out composed);
    }

    private sealed class Tables
    {
        public readonly Dictionary<int, int[]> Canonical = new();
        public readonly Dictionary<int, int[]> Compatibility = new();
        public readonly Dictionary<long, int> Compositions = new();
        private readonly Dictionary<int, byte> _classes = new();

        public int Class(int cp) => cp < 0x300 ? 0 : _classes.GetValueOrDefault(cp);

        public static Tables Parse()
        {
            var t = new Tables();
            foreach (var entry in UnicodeNormalizationData.Table.Split([' ', '\n', '\r'], StringSplitOptions.RemoveEmptyEntries))
            {
                char kind = entry[0];
                if (kind == 'C')
                {
                    int colon = entry.IndexOf(':');
                    string range = entry[1..colon];
                    int dash = range.IndexOf('-');
                    int start = Hex(dash < 0 ? range : range[..dash]), end = dash < 0 ? start : Hex(range[(dash + 1)..]);
                    byte cc = byte.Parse(entry.AsSpan(colon + 1), CultureInfo.InvariantCulture);
                    for (int cp = start; cp <= end; cp++) t._classes[cp] = cc;
                    continue;
                }
                int eq = entry.IndexOf('=');
                int key = Hex(entry[1..eq]);
                int[] parts = entry[(eq + 1)..].Split('.').Select(Hex).ToArray();
                if (kind == 'K') t.Compatibility[key] = parts;
                else t.Canonical[key] = parts;
                if (kind == 'D' && parts.Length == 2) t.Compositions[(long)parts[0] << 21 | (uint)parts[1]] = key;
            }
            return t;
        }

        private static int Hex(string s) => int.Parse(s, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture);
    }
}
