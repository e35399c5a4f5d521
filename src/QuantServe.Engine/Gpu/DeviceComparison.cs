using QuantServe.Engine.Inference;

namespace QuantServe.Engine.Gpu;

/// <summary>Outcome of running the same prompts greedily on the CPU and on a device.</summary>
/// <param name="MaxAbsLogitDiff">Largest |logit_cpu − logit_device| over every compared step and vocabulary entry.</param>
/// <param name="LogitScale">Largest |logit_cpu| seen (to read the difference relative to it).</param>
/// <param name="ComparedSteps">Steps whose logits were compared (all prompt ends, then decode steps while the ids agree).</param>
/// <param name="CpuIds">Greedy continuation per prompt on the CPU.</param>
/// <param name="DeviceIds">Greedy continuation per prompt on the device.</param>
public sealed record ComparisonResult(double MaxAbsLogitDiff, double LogitScale, int ComparedSteps, int[][] CpuIds, int[][] DeviceIds)
{
    /// <summary>Whether every prompt's greedy continuation is identical.</summary>
    public bool GreedyEqual => CpuIds.Zip(DeviceIds).All(p => p.First.AsSpan().SequenceEqual(p.Second));

    /// <summary>Number of leading ids that agree, summed over prompts, and the total.</summary>
    public (int Agree, int Total) Agreement
    {
        get
        {
            int agree = 0, total = 0;
            for (int s = 0; s < CpuIds.Length; s++)
            {
                int n = 0;
                while (n < CpuIds[s].Length && n < DeviceIds[s].Length && CpuIds[s][n] == DeviceIds[s][n]) n++;
                agree += n;
                total += CpuIds[s].Length;
            }
            return (agree, total);
        }
    }
}

/// <summary>
/// Runs prompts on the CPU <see cref="LlamaModel"/> and on an <see cref="IDeviceModel"/> the same way: all prompts prefilled
/// in one batch, then decoded in lock-step (one token per sequence per forward) with greedy (arg-max, lowest id on ties)
/// sampling on each side. Logits are compared at every prompt end and at every decode step where both sides have fed the
/// same tokens so far.
/// </summary>
public static class DeviceComparison
{
    /// <summary>Greedy <paramref name="steps"/> tokens per prompt on the CPU; returns the ids and, per step, the logits rows.</summary>
    public static (int[][] Ids, List<float[]> Logits) RunCpu(LlamaModel model, IReadOnlyList<int[]> prompts, int steps)
    {
        int n = prompts.Count, vocab = model.VocabSize;
        var caches = prompts.Select(p => model.CreateCache(Math.Min(model.Config.ContextLength, p.Length + steps + 1))).ToArray();
        var ids = prompts.Select(_ => new int[steps]).ToArray();
        var logits = new float[n * vocab];
        var history = new List<float[]>();
        var chunks = new SequenceChunk[n];
        for (int s = 0; s < n; s++) chunks[s] = new SequenceChunk(caches[s], prompts[s]);
        model.Forward(chunks, logits);
        for (int step = 0; step < steps; step++)
        {
            history.Add(logits.ToArray());
            for (int s = 0; s < n; s++) ids[s][step] = ArgMax(logits.AsSpan(s * vocab, vocab));
            if (step == steps - 1) break;
            for (int s = 0; s < n; s++) chunks[s] = new SequenceChunk(caches[s], new[] { ids[s][step] }, caches[s].Length);
            model.Forward(chunks, logits);
        }
        return (ids, history);
    }

    /// <summary>The same on a device; <paramref name="readLogits"/> false samples on the device without copying logits.</summary>
    public static (int[][] Ids, List<float[]> Logits) RunDevice(IDeviceModel model, IReadOnlyList<int[]> prompts, int steps, bool readLogits = true)
    {
        int n = prompts.Count, vocab = model.Config.VocabSize;
        var caches = prompts.Select(p => model.CreateCache(Math.Min(model.Config.ContextLength, p.Length + steps + 1))).ToArray();
        try
        {
            var ids = prompts.Select(_ => new int[steps]).ToArray();
            var history = new List<float[]>();
            var chunks = new GpuChunk[n];
            var next = new int[n];
            for (int s = 0; s < n; s++) chunks[s] = new GpuChunk(caches[s], prompts[s]);
            model.Forward(chunks);
            for (int step = 0; step < steps; step++)
            {
                if (readLogits)
                {
                    var logits = new float[n * vocab];
                    model.ReadLogits(logits);
                    history.Add(logits);
                }
                model.SampleGreedy(next);
                for (int s = 0; s < n; s++) ids[s][step] = next[s];
                if (step == steps - 1) break;
                for (int s = 0; s < n; s++) chunks[s] = new GpuChunk(caches[s], new[] { next[s] });
                model.Forward(chunks);
            }
            return (ids, history);
        }
        finally { foreach (var c in caches) c.Dispose(); }
    }

    /// <summary>Compares a CPU run and a device run of the same prompts (see <see cref="RunCpu"/>, <see cref="RunDevice"/>).</summary>
    public static ComparisonResult Compare((int[][] Ids, List<float[]> Logits) cpu, (int[][] Ids, List<float[]> Logits) device, int vocab)
    {
        double maxDiff = 0, scale = 0;
        int compared = 0, n = cpu.Ids.Length;
        for (int step = 0; step < Math.Min(cpu.Logits.Count, device.Logits.Count); step++)
        {
            for (int s = 0; s < n; s++)
            {
                // After a disagreement the two sides feed different tokens; their logits are no longer comparable.
                bool same = true;
                for (int j = 0; j < step; j++) same &= cpu.Ids[s][j] == device.Ids[s][j];
                if (!same) continue;
                var a = cpu.Logits[step].AsSpan(s * vocab, vocab);
                var b = device.Logits[step].AsSpan(s * vocab, vocab);
                for (int i = 0; i < vocab; i++)
                {
                    maxDiff = Math.Max(maxDiff, Math.Abs(a[i] - b[i]));
                    scale = Math.Max(scale, Math.Abs(a[i]));
                }
                compared++;
            }
        }
        return new ComparisonResult(maxDiff, scale, compared, cpu.Ids, device.Ids);
    }

    /// <summary>Index of the largest value (lowest index on ties), as the device's arg-max kernel defines it.</summary>
    public static int ArgMax(ReadOnlySpan<float> row)
    {
        int best = 0;
        for (int i = 1; i < row.Length; i++) if (row[i] > row[best]) best = i;
        return best;
    }
}
