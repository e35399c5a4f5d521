namespace QuantServe.Engine.Tokenization.Bpe;

/// <summary>
/// A BPE merge table: the pair (left id, right id) → (rank, merged id), lower rank merging first. Merging a word
/// follows Hugging Face tokenizers exactly: repeatedly merge the adjacent pair of lowest rank, leftmost on ties,
/// using a priority queue so a word of n symbols takes O(n log n) however long it is.
/// </summary>
internal sealed class BpeMerges
{
    private readonly Dictionary<long, (int Rank, int Merged)> _pairs;

    [ThreadStatic] private static PriorityQueue<int, long>? t_queue;
    [ThreadStatic] private static int[]? t_prev;
    [ThreadStatic] private static int[]? t_next;

    public BpeMerges(Dictionary<long, (int Rank, int Merged)> pairs) => _pairs = pairs;

    /// <summary>Number of merges.</summary>
    public int Count => _pairs.Count;

    public static long Key(int left, int right) => (long)left << 32 | (uint)right;

    public bool TryGet(int left, int right, out int rank, out int merged)
    {
        if (_pairs.TryGetValue(Key(left, right), out var m)) { rank = m.Rank; merged = m.Merged; return true; }
        rank = merged = 0;
        return false;
    }

    /// <summary>Merges the symbol ids in place; returns how many remain (the first ones of <paramref name="symbols"/>).</summary>
    public int Apply(Span<int> symbols)
    {
        int n = symbols.Length;
        if (n < 2) return n;
        if (t_prev == null || t_prev.Length < n)
        {
            t_prev = new int[Math.Max(n, 64)];
            t_next = new int[t_prev.Length];
        }
        var prev = t_prev;
        var next = t_next!;
        var queue = t_queue ??= new PriorityQueue<int, long>();
        queue.Clear();
        for (int i = 0; i < n; i++) { prev[i] = i - 1; next[i] = i + 1 < n ? i + 1 : -1; }
        for (int i = 0; i + 1 < n; i++)
            if (TryGet(symbols[i], symbols[i + 1], out int rank, out _)) queue.Enqueue(i, Priority(rank, i));

        while (queue.TryDequeue(out int pos, out long priority))
        {
            int right = next[pos];
            if (symbols[pos] < 0 || right < 0) continue;
            // Entries go stale when a neighbour merged; the pair now at pos must still be the one queued.
            if (!TryGet(symbols[pos], symbols[right], out int rank, out int merged) || rank != (int)(priority >> 32)) continue;
            symbols[pos] = merged;
            symbols[right] = -1;
            int after = next[right];
            next[pos] = after;
            if (after >= 0) prev[after] = pos;
            int before = prev[pos];
            if (before >= 0 && TryGet(symbols[before], merged, out int r1, out _)) queue.Enqueue(before, Priority(r1, before));
            if (after >= 0 && TryGet(merged, symbols[after], out int r2, out _)) queue.Enqueue(pos, Priority(r2, pos));
        }

        int count = 0;
        for (int i = 0; i >= 0; i = next[i]) symbols[count++] = symbols[i];
        return count;
    }

    /// <summary>Hashes pair keys well: <c>long.GetHashCode</c> is left ^ right, which collides for small ids.</summary>
    internal sealed class KeyComparer : IEqualityComparer<long>
    {
        public static readonly KeyComparer Instance = new();

        public bool Equals(long x, long y) => x == y;

        public int GetHashCode(long key) => (int)((ulong)key * 0x9E3779B97F4A7C15UL >> 32);
    }

    private static long Priority(int rank, int pos) => (long)rank << 32 | (uint)pos;
}
