using QuantServe.Engine.Kernels.Cpu;

namespace QuantServe.Engine.Tests.Kernels;

public class WorkerPoolTests
{
    private sealed class CountingWork : IParallelWork
    {
        public int[] Hits = [];
        public int[] Workers = [];
        public void Execute(int item, int worker)
        {
            Interlocked.Increment(ref Hits[item]);
            Interlocked.Increment(ref Workers[worker]);
        }
    }

    private sealed class ThrowingWork : IParallelWork
    {
        public void Execute(int item, int worker)
        {
            if (item == 17) throw new InvalidOperationException("item 17 failed");
        }
    }

    private sealed class NestedWork(WorkerPool pool) : IParallelWork
    {
        public readonly CountingWork Inner = new() { Hits = new int[8 * 5], Workers = new int[4] };
        public void Execute(int item, int worker)
        {
            // A nested dispatch from inside a work item runs inline on this thread.
            var slice = new SliceWork(Inner, item * 5);
            pool.For(slice, 5);
        }
    }

    private sealed class SliceWork(CountingWork inner, int offset) : IParallelWork
    {
        public void Execute(int item, int worker) => inner.Execute(offset + item, 0);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(4)]
    public void For_ManyDispatches_RunsEveryItemExactlyOnce(int threads)
    {
        using var pool = new WorkerPool(threads);
        var work = new CountingWork { Workers = new int[threads] };
        for (int round = 0; round < 200; round++)
        {
            int count = round % 37;
            work.Hits = new int[count];
            pool.For(work, count);
            Assert.All(work.Hits, h => Assert.Equal(1, h));
        }
        Assert.Equal(Enumerable.Range(0, 200).Sum(r => r % 37), work.Workers.Sum());
    }

    [Fact]
    public void For_ItemThrows_RethrowsOnCallerAndStaysUsable()
    {
        using var pool = new WorkerPool(2);
        var ex = Assert.Throws<InvalidOperationException>(() => pool.For(new ThrowingWork(), 100));
        Assert.Equal("item 17 failed", ex.Message);
        var work = new CountingWork { Hits = new int[50], Workers = new int[2] };
        pool.For(work, 50);
        Assert.All(work.Hits, h => Assert.Equal(1, h));
    }

    [Fact]
    public void For_NestedDispatch_RunsInline()
    {
        using var pool = new WorkerPool(2);
        var work = new NestedWork(pool);
        pool.For(work, 8);
        Assert.All(work.Inner.Hits, h => Assert.Equal(1, h));
    }

    [Fact]
    public async Task For_ConcurrentCallers_AreSerialisedAndComplete()
    {
        using var pool = new WorkerPool(2);
        var tasks = Enumerable.Range(0, 4).Select(_ => Task.Run(() =>
        {
            var work = new CountingWork { Workers = new int[2] };
            for (int i = 0; i < 100; i++)
            {
                work.Hits = new int[64];
                pool.For(work, 64);
                if (work.Hits.Any(h => h != 1)) return false;
            }
            return true;
        })).ToArray();
        Assert.All(await Task.WhenAll(tasks), Assert.True);
    }

    [Fact]
    public void For_AfterIdleLongEnoughToBlock_WakesWorkers()
    {
        using var pool = new WorkerPool(2);
        var work = new CountingWork { Hits = new int[16], Workers = new int[2] };
        Thread.Sleep(50); // well past the spin period: the worker is blocked
        pool.For(work, 16);
        Assert.All(work.Hits, h => Assert.Equal(1, h));
    }

    [Fact]
    public void Constructor_NegativeThreads_Throws() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new WorkerPool(-1));
}
