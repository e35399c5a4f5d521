using QuantServe.Engine.Inference;
using QuantServe.Engine.Kernels.Cpu;
using QuantServe.Engine.Models;

namespace QuantServe.Engine.Evaluation;

/// <summary>
/// Runs one model over evaluation windows. The unscored first half of a window is one batched forward pass without logits;
/// the scored positions follow in pieces of at most <see cref="PieceRows"/> tokens with logits at every position, so the
/// logits buffer holds PieceRows × vocab floats however long the window is. The window's last token is never fed: its logits
/// would predict past the window.
/// </summary>
internal sealed class WindowScorer
{
    private readonly LlamaModel _model;
    private readonly KvCache _cache;
    private readonly float[] _logits;
    private readonly int[] _window;

    public WindowScorer(LoadedModel model, int contextLength, WorkerPool pool)
    {
        PieceRows = Math.Min(256, contextLength);
        _model = new LlamaModel(model, Math.Min(512, contextLength), pool);
        _cache = _model.CreateCache(contextLength);
        _logits = GC.AllocateArray<float>(checked(PieceRows * model.Config.VocabSize), pinned: true);
        _window = new int[contextLength];
    }

    /// <summary>Most scored rows per piece.</summary>
    public int PieceRows { get; }

    /// <summary>Token ids of the current window (BOS-substituted).</summary>
    public ReadOnlySpan<int> Window => _window;

    /// <summary>Loads window <paramref name="chunk"/> and runs its positions 0 .. first−1.</summary>
    public void Begin(EvaluationWindows windows, int chunk)
    {
        windows.CopyWindow(chunk, _window);
        _cache.Clear();
        _model.Forward([new SequenceChunk(_cache, _window.AsMemory(0, windows.First), 0)], _logits);
    }

    /// <summary>Runs positions <paramref name="start"/> .. start+count−1 (following the previous piece) and returns their logits rows.</summary>
    public ReadOnlySpan<float> Piece(int start, int count)
    {
        _model.Forward([new SequenceChunk(_cache, _window.AsMemory(start, count), start)], _logits, logitsForAllPositions: true);
        return _logits.AsSpan(0, count * _model.VocabSize);
    }

    /// <summary>The logits buffer (rows of the last piece).</summary>
    public float[] Logits => _logits;
}
