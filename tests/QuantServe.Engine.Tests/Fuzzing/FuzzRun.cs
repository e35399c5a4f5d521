using System.Diagnostics;
using QuantServe.Engine.Models;
using Xunit.Abstractions;

namespace QuantServe.Engine.Tests.Fuzzing;

/// <summary>One case: its number, seed, random source, mutation log and a private temporary folder.</summary>
internal sealed class FuzzCase(int index, int seed, string dir)
{
    public int Index { get; } = index;
    public int Seed { get; } = seed;
    public Random Rng { get; } = new(seed);
    public List<string> Log { get; } = [];
    public string Dir { get; } = dir;

    /// <summary>Text every <see cref="ModelLoadException"/> of this case must contain (the damaged file's name).</summary>
    public string MustName { get; set; } = "";

    /// <summary>Another acceptable name (an undamaged file the damaged one is checked against).</summary>
    public string? OrName { get; set; }

    /// <summary>Most bytes the checked action may allocate on its thread.</summary>
    public long AllocationLimit { get; set; } = 64L << 20;

    public ByteMutator Mutator() => new(Rng, Log);

    public string Path(string name) => System.IO.Path.Combine(Dir, name);
}

/// <summary>
/// The fuzzing oracle. Each case prepares a mutant (outside the measurement), then runs the reader on its own thread
/// under a time limit while counting the bytes that thread allocates. The reader may succeed (the action then checks
/// the result further: tensors inside the file, a forward pass) or throw <see cref="ModelLoadException"/> whose
/// message names the damaged file. Anything else — another exception type, a message that does not name the file,
/// a time-out or an allocation over the limit — is a failure, reported with the case's seed and mutations.
/// </summary>
internal sealed class FuzzRun(string reader, ITestOutputHelper output)
{
    /// <summary>Wall-clock limit per case; generous because CI shares two cores, yet far below what a hang would take.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private readonly List<string> _failures = [];
    private readonly Dictionary<string, int> _reasons = new(StringComparer.Ordinal);

    public int Tried { get; private set; }
    public int Rejected { get; private set; }
    public int Loaded { get; private set; }
    public long MaxAllocated { get; private set; }

    /// <summary>Runs <paramref name="cases"/> cases: <paramref name="prepare"/> builds the mutant and returns the action to check.</summary>
    public void Run(int cases, Func<FuzzCase, Action> prepare)
    {
        for (int i = 0; i < cases; i++) Case(i, prepare);
        Report();
    }

    private readonly Stopwatch _clock = Stopwatch.StartNew();

    /// <summary>Runs case <paramref name="index"/> (skipped when <c>QUANTSERVE_FUZZ_ONLY</c> names another).</summary>
    public void Case(int index, Func<FuzzCase, Action> prepare)
    {
        if (FuzzSettings.Only is { } only && only != index) return;
        RunOne(index, prepare);
    }

    /// <summary>Prints the tally and fails the test when any case failed.</summary>
    public void Report()
    {
        var clock = _clock;
        output.WriteLine($"{reader}: {Tried} cases, {Rejected} rejected cleanly, {Loaded} loaded, {_failures.Count} failures " +
                         $"in {clock.Elapsed.TotalSeconds:F1} s (seed {FuzzSettings.Seed}, max allocation {MaxAllocated / 1024} KiB)");
        foreach (var (reason, count) in _reasons.OrderByDescending(p => p.Value).Take(12))
            output.WriteLine($"  {count,5} × {reason}");
        Assert.True(_failures.Count == 0, $"{reader}: {_failures.Count} of {Tried} cases failed:\n" + string.Join("\n\n", _failures.Take(8)));
    }

    private void RunOne(int index, Func<FuzzCase, Action> prepare)
    {
        string dir = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"quantserve-fuzz-{reader}-{index}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        var c = new FuzzCase(index, FuzzSettings.CaseSeed(reader, index), dir);
        try
        {
            var action = prepare(c);
            Tried++;
            Exception? error = null;
            long allocated = 0;
            var task = Task.Factory.StartNew(() =>
            {
                long before = GC.GetAllocatedBytesForCurrentThread();
                try { action(); }
                catch (Exception e) { error = e; }
                allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
            if (!task.Wait(Timeout))
            {
                Fail(c, $"no answer within {Timeout.TotalSeconds} s (hang?)");
                return;
            }
            MaxAllocated = Math.Max(MaxAllocated, allocated);
            if (allocated > c.AllocationLimit)
                Fail(c, $"allocated {allocated / (1 << 20)} MiB, over the {c.AllocationLimit / (1 << 20)} MiB limit" + (error != null ? $" (then {error.GetType().Name}: {error.Message})" : ""));
            else if (error is null) Loaded++;
            else if (error is ModelLoadException mle)
            {
                if (!mle.Message.Contains(c.MustName, StringComparison.Ordinal) && (c.OrName is null || !mle.Message.Contains(c.OrName, StringComparison.Ordinal)))
                    Fail(c, $"ModelLoadException does not name '{c.MustName}': {mle.Message}");
                else
                {
                    Rejected++;
                    string reason = Reason(mle.Problem);
                    _reasons[reason] = _reasons.GetValueOrDefault(reason) + 1;
                }
            }
            else Fail(c, $"{error.GetType().FullName}: {error.Message}\n{Frames(error)}");
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    private void Fail(FuzzCase c, string what)
    {
        string keep = "";
        if (FuzzSettings.KeepFolder is { } folder)
        {
            string target = System.IO.Path.Combine(folder, $"{reader}-{c.Index}");
            Directory.CreateDirectory(target);
            foreach (var f in Directory.EnumerateFiles(c.Dir))
                if (new FileInfo(f).LinkTarget is null) File.Copy(f, System.IO.Path.Combine(target, System.IO.Path.GetFileName(f)), true);
            keep = $"\n  mutant kept in {target}";
        }
        _failures.Add($"[{reader} case {c.Index}, seed {c.Seed}] {what}\n  mutations: {string.Join("; ", c.Log)}\n" +
                      $"  reproduce: QUANTSERVE_FUZZ_SEED={FuzzSettings.Seed} QUANTSERVE_FUZZ_ONLY={c.Index} QUANTSERVE_FUZZ_KEEP=/tmp/fuzz-keep dotnet test tests/QuantServe.Engine.Tests --filter \"FullyQualifiedName~Fuzzing\"{keep}");
    }

    private static string Frames(Exception e) =>
        string.Join("\n", (e.StackTrace ?? "").Split('\n').Take(6).Select(l => "    " + l.Trim()));

    /// <summary>The problem with numbers and quoted names blanked, so rejections group by kind.</summary>
    private static string Reason(string problem)
    {
        var s = System.Text.RegularExpressions.Regex.Replace(problem, "'[^']*'|\"[^\"]*\"", "'…'");
        s = System.Text.RegularExpressions.Regex.Replace(s, @"-?\d+(\.\d+)?(E[+-]?\d+)?", "N");
        return s.Length > 90 ? s[..90] + "…" : s;
    }
}
