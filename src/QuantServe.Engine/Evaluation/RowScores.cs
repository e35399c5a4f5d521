using System.Numerics.Tensors;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Kernels.Cpu;

namespace QuantServe.Engine.Evaluation;

/// <summary>
/// Per-row statistics of logits rows, one row per pool item. For a row z and its target t:
/// <c>lse(z) = max(z) + ln Σ_i exp(z_i − max(z))</c> (exponentials in float, the sum in double),
/// <c>nll = lse(z) − z_t</c>, and <c>top</c> = argmax z (lowest index on ties). With base rows b as well:
/// <c>KL(p_b ‖ p_z) = Σ_i p_b,i (b_i − z_i) − (lse(b) − lse(z))</c> where <c>p_b,i = e_i / Σ e</c>, <c>e_i = exp(b_i − max b)</c>;
/// the products and sums run in double, so identical rows give exactly 0.
/// </summary>
internal sealed class RowScores : IParallelWork
{
    private readonly int _vocab;
    private readonly float[][] _scratch;
    private float[] _rows = [];
    private float[]? _baseRows;
    private int[] _targets = [];

    public RowScores(int vocab, int rows, int threads)
    {
        _vocab = vocab;
        _scratch = new float[threads][];
        for (int i = 0; i < threads; i++) _scratch[i] = new float[vocab];
        Nll = new double[rows]; BaseNll = new double[rows]; Kl = new double[rows];
        Top = new int[rows]; BaseTop = new int[rows];
    }

    /// <summary>−log p(target) under the scored rows.</summary>
    public double[] Nll { get; }

    /// <summary>−log p(target) under the base rows.</summary>
    public double[] BaseNll { get; }

    /// <summary>KL(p_base ‖ p) per row.</summary>
    public double[] Kl { get; }

    /// <summary>Most likely token of each scored row.</summary>
    public int[] Top { get; }

    /// <summary>Most likely token of each base row.</summary>
    public int[] BaseTop { get; }

    /// <summary>Scores the first <paramref name="count"/> rows of <paramref name="rows"/> (and of <paramref name="baseRows"/> when given) against <paramref name="targets"/>.</summary>
    public void Score(WorkerPool pool, float[] rows, float[]? baseRows, int[] targets, int count)
    {
        _rows = rows; _baseRows = baseRows; _targets = targets;
        pool.For(this, count);
        _rows = []; _baseRows = null; _targets = [];
    }

    public void Execute(int item, int worker)
    {
        var scratch = _scratch[worker];
        var z = new ReadOnlySpan<float>(_rows, item * _vocab, _vocab);
        int target = _targets[item];
        double lseZ = LogSumExp(z, scratch, out _);
        Nll[item] = lseZ - z[target];
        Top[item] = Sampler.ArgMax(z);
        if (_baseRows == null) return;

        var b = new ReadOnlySpan<float>(_baseRows, item * _vocab, _vocab);
        double lseB = LogSumExp(b, scratch, out double sumB);
        BaseNll[item] = lseB - b[target];
        BaseTop[item] = Sampler.ArgMax(b);
        double weighted = 0;
        for (int i = 0; i < _vocab; i++) weighted += (double)scratch[i] * ((double)b[i] - z[i]);
        Kl[item] = weighted / sumB - (lseB - lseZ);
    }

    // Leaves exp(x_i − max x) in scratch and returns max + ln Σ.
    private static double LogSumExp(ReadOnlySpan<float> x, float[] scratch, out double sum)
    {
        float max = TensorPrimitives.Max(x);
        var e = scratch.AsSpan(0, x.Length);
        TensorPrimitives.Subtract(x, max, e);
        TensorPrimitives.Exp(e, e);
        sum = 0;
        foreach (float v in e) sum += v;
        return max + Math.Log(sum);
    }
}
