namespace QuantServe.Engine.Kernels.Cpu;

/// <summary>
/// A unit of data-parallel work for <see cref="WorkerPool.For"/>: items 0..count-1 are handed out one at a time to
/// whichever thread is free. Implementations are preallocated objects whose fields carry the operands, so a dispatch
/// allocates nothing.
/// </summary>
public interface IParallelWork
{
    /// <summary>Processes item <paramref name="item"/>; <paramref name="worker"/> is the executing thread's index in
    /// [0, <see cref="WorkerPool.Threads"/>) for indexing per-thread scratch.</summary>
    void Execute(int item, int worker);
}
