namespace QuantServe.Engine.Inference;

/// <summary>
/// Part of a forward batch: consecutive tokens of one sequence, placed at positions
/// [<see cref="StartPosition"/>, StartPosition + Tokens.Length) of that sequence's <see cref="Cache"/>.
/// StartPosition is normally <c>Cache.Length</c>; a smaller value overwrites (rewinds) the cache from there.
/// </summary>
public readonly record struct SequenceChunk(KvCache Cache, ReadOnlyMemory<int> Tokens, int StartPosition)
{
    /// <summary>A chunk appended at the end of <paramref name="cache"/>.</summary>
    public SequenceChunk(KvCache cache, ReadOnlyMemory<int> tokens) : this(cache, tokens, cache.Length) { }
}
