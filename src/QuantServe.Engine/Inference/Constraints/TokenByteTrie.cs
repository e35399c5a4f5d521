using System.Runtime.CompilerServices;
using QuantServe.Engine.Tokenization;

namespace QuantServe.Engine.Inference.Constraints;

/// <summary>
/// Every token's bytes (as they decode in the middle of a text) arranged as a trie stored in preorder arrays, so a
/// byte-level automaton can test the whole vocabulary by walking it once: a byte rejected at a node skips the node's
/// whole subtree (every token sharing that prefix) with one jump. Built once per tokenizer and shared.
/// Tokens that decode to no bytes (control tokens) are not in the trie.
/// </summary>
public sealed class TokenByteTrie
{
    private static readonly ConditionalWeakTable<Tokenizer, TokenByteTrie> Cache = new();

    internal readonly byte[] Label;        // byte on the edge into node i
    internal readonly ushort[] NodeDepth;  // 1 for children of the root
    internal readonly int[] SubtreeEnd;    // first node after node i's subtree
    internal readonly int[] TokenStart;    // tokens ending at node i: Tokens[TokenStart[i] .. TokenStart[i] + TokenCount[i]]
    internal readonly ushort[] TokenCount;
    internal readonly int[] Tokens;
    internal readonly bool[] PlainString;       // per token id: bytes are ordinary string content (see IsPlainStringContent)
    internal readonly int PlainStringCount;
    internal readonly int[] OtherTokens;        // ids with bytes that are not plain string content
    internal readonly byte[][] Bytes;           // per token id: mid-text bytes

    /// <summary>Number of trie nodes.</summary>
    public int NodeCount => Label.Length;

    /// <summary>Longest token in bytes (the trie's depth).</summary>
    public int MaxTokenBytes { get; }

    /// <summary>Vocabulary size of the tokenizer it was built from.</summary>
    public int VocabSize { get; }

    /// <summary>The trie for <paramref name="tokenizer"/> (built on first use, then cached for the tokenizer's lifetime).</summary>
    public static TokenByteTrie For(Tokenizer tokenizer) => Cache.GetValue(tokenizer, t => new TokenByteTrie(t));

    /// <summary>A previous-token id that is not BOS, so <see cref="Tokenizer.TokenBytes"/> gives mid-text bytes
    /// (SentencePiece drops a token's leading space only right after BOS or at the start).</summary>
    public static int MidTextPrevious(Tokenizer tokenizer) => tokenizer.BosId == 0 ? (tokenizer.VocabSize > 1 ? 1 : -1) : 0;

    /// <summary>Whether <paramref name="bytes"/> can appear inside a JSON string and leave it open with nothing
    /// pending: no quote, backslash or control byte, and only whole, well-formed UTF-8 sequences.</summary>
    public static bool IsPlainStringContent(ReadOnlySpan<byte> bytes)
    {
        foreach (byte b in bytes)
            if (b < 0x20 || b == (byte)'"' || b == (byte)'\\') return false;
        return System.Text.Unicode.Utf8.IsValid(bytes);
    }

    private TokenByteTrie(Tokenizer tokenizer)
    {
        VocabSize = tokenizer.VocabSize;
        int prev = MidTextPrevious(tokenizer);
        var entries = new List<(byte[] Bytes, int Id)>(tokenizer.VocabSize);
        Bytes = new byte[tokenizer.VocabSize][];
        PlainString = new bool[tokenizer.VocabSize];
        var others = new List<int>();
        for (int id = 0; id < tokenizer.VocabSize; id++)
        {
            var b = tokenizer.TokenBytes(id, prev);
            Bytes[id] = b.ToArray();
            if (b.Length == 0 || b.Length > ushort.MaxValue) continue;
            entries.Add((Bytes[id], id));
            if (IsPlainStringContent(b)) { PlainString[id] = true; PlainStringCount++; }
            else others.Add(id);
        }
        OtherTokens = others.ToArray();
        entries.Sort((x, y) =>
        {
            int c = x.Bytes.AsSpan().SequenceCompareTo(y.Bytes);
            return c != 0 ? c : x.Id.CompareTo(y.Id);
        });

        var label = new List<byte>();
        var depth = new List<ushort>();
        var end = new List<int>();
        var tokStart = new List<int>();
        var tokCount = new List<ushort>();
        var tokens = new List<int>(entries.Count);
        var path = new List<int>(); // node index at each depth of the current path
        byte[] last = [];
        foreach (var (bytes, id) in entries)
        {
            int lcp = 0;
            while (lcp < last.Length && lcp < bytes.Length && last[lcp] == bytes[lcp]) lcp++;
            while (path.Count > lcp)
            {
                end[path[^1]] = label.Count;
                path.RemoveAt(path.Count - 1);
            }
            for (int d = lcp; d < bytes.Length; d++)
            {
                path.Add(label.Count);
                label.Add(bytes[d]);
                depth.Add((ushort)(d + 1));
                end.Add(-1);
                tokStart.Add(tokens.Count);
                tokCount.Add(0);
            }
            int node = path[bytes.Length - 1];
            if (tokCount[node] == 0) tokStart[node] = tokens.Count;
            tokens.Add(id);
            tokCount[node]++;
            MaxTokenBytes = Math.Max(MaxTokenBytes, bytes.Length);
            last = bytes;
        }
        foreach (int n in path) end[n] = label.Count;
        Label = label.ToArray();
        NodeDepth = depth.ToArray();
        SubtreeEnd = end.ToArray();
        TokenStart = tokStart.ToArray();
        TokenCount = tokCount.ToArray();
        Tokens = tokens.ToArray();
    }
}
