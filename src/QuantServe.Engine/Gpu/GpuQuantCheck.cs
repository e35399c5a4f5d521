using System.Diagnostics;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;
using QuantServe.Engine.Quantization.Calibration;
using QuantServe.Engine.Quantization.Formats;
using QuantServe.Engine.Quantization.Gguf;
using QuantServe.Engine.Quantization.Methods;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Gpu;

/// <summary>
/// One k-quant agreement row: <paramref name="Blocks"/> super-blocks quantized on the CPU and the device,
/// <paramref name="Identical"/> of them byte-identical, <paramref name="WorseBlocks"/> where the device's block error
/// Σ w·(x − deq)² exceeds the CPU's by more than 1e-6 relative.
/// </summary>
public sealed record KQuantAgreement(string Data, string Type, bool Weighted, long Blocks, long Identical, long WorseBlocks,
    double CpuSeconds, double GpuSeconds)
{
    /// <summary>Identical blocks in percent.</summary>
    public double IdenticalPercent => Blocks == 0 ? 100 : 100.0 * Identical / Blocks;
}

/// <summary>
/// One GPTQ agreement row for a matrix: codes identical between the CPU and the device, and the relative output errors
/// ‖(W − Ŵ)X‖² / ‖WX‖² (through the CPU's Hessian) of both. <paramref name="HessianRelDiff"/> is the largest
/// |H_gpu − H_cpu| / max|H_cpu| (0 when both used the CPU's Hessian).
/// </summary>
public sealed record GptqAgreement(string Matrix, string Type, string Hessian, long Weights, long IdenticalCodes, double CpuError,
    double GpuError, double HessianRelDiff, double CpuSeconds, double GpuSeconds)
{
    /// <summary>Identical codes in percent.</summary>
    public double IdenticalPercent => Weights == 0 ? 100 : 100.0 * IdenticalCodes / Weights;

    /// <summary>(GPU error − CPU error) / CPU error.</summary>
    public double ErrorDelta => CpuError == 0 ? GpuError : (GpuError - CpuError) / CpuError;
}

/// <summary>
/// CPU-versus-device checks of the quantizers' accelerators (<see cref="GpuQuantization"/>): k-quant bytes on real matrices and heavy-tailed random rows,
/// GPTQ codes and layer output error on a real model's layer-0 matrices with calibration Hessians.
/// </summary>
public static class GpuQuantCheck
{
    /// <summary>K-quant types the device searches.</summary>
    public static readonly GgmlType[] KQuantTypes = [GgmlType.Q2_K, GgmlType.Q3_K, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K];

    /// <summary>
    /// Every matrix of <paramref name="model"/> whose width is a multiple of 256 (dequantized to float) plus
    /// <paramref name="randomRows"/> rows of 4096 heavy-tailed random values, each type with and without importance weights
    /// (a deterministic positive imatrix row per width).
    /// </summary>
    public static List<KQuantAgreement> KQuant(IKQuantAccelerator gpu, LoadedModel? model, int randomRows, int threads)
    {
        var datasets = new List<(string Name, float[] X, int Rows, int Cols)>();
        if (model is not null)
        {
            var mats = model.Weights.Layers.SelectMany(l => new[] { l.Wq, l.Wk, l.Wv, l.Wo, l.Gate, l.Up, l.Down })
                .Append(model.Weights.Output).Where(w => w is not null && w.Cols % 256 == 0).Cast<WeightMatrix>().ToList();
            foreach (var group in mats.GroupBy(m => m.Cols))
            {
                int cols = group.Key, rows = group.Sum(m => m.Rows);
                var x = new float[(long)rows * cols];
                int at = 0;
                foreach (var m in group)
                    for (int r = 0; r < m.Rows; r++, at++) m.DequantizeRow(r, x.AsSpan(at * cols, cols));
                datasets.Add(($"model width {cols}", x, rows, cols));
            }
        }
        if (randomRows > 0)
        {
            const int cols = 4096;
            var x = new float[(long)randomRows * cols];
            var rng = new Random(7);
            for (int i = 0; i < x.Length; i++)
            {
                // Gaussian scaled by a heavy-tailed factor: most values near 0.02, a few outliers 10–100× larger.
                double g = Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
                double tail = rng.NextDouble() < 0.002 ? 30 : 1;
                x[i] = (float)(0.02 * g * tail);
            }
            datasets.Add(("random heavy-tailed", x, randomRows, cols));
        }
        var rows2 = new List<KQuantAgreement>();
        foreach (var (name, x, rows, cols) in datasets)
        {
            var rng = new Random(cols);
            var imatrix = new float[cols];
            for (int i = 0; i < cols; i++) imatrix[i] = (float)(0.05 + 4 * rng.NextDouble() * rng.NextDouble());
            foreach (var type in KQuantTypes)
                foreach (bool weighted in new[] { false, true })
                    rows2.Add(CompareKQuant(gpu, name, type, x, rows, cols, weighted ? imatrix : null, threads));
        }
        return rows2;
    }

    private static KQuantAgreement CompareKQuant(IKQuantAccelerator gpu, string name, GgmlType type, float[] x, int rows, int cols,
        float[]? importance, int threads)
    {
        var format = (KQuantFormat)TensorFormats.ForGgml(type)!;
        int rowBytes = (int)format.RowBytes(cols);
        var cpu = new byte[(long)rows * rowBytes];
        var dev = new byte[(long)rows * rowBytes];
        var clock = Stopwatch.StartNew();
        Parallel.For(0, rows, new ParallelOptions { MaxDegreeOfParallelism = threads },
            r => format.QuantizeRow(x.AsSpan(r * cols, cols), cpu.AsSpan(r * rowBytes, rowBytes), importance));
        double cpuSeconds = clock.Elapsed.TotalSeconds;
        clock.Restart();
        gpu.Quantize(type, x, rows, cols, importance, dev);
        double gpuSeconds = clock.Elapsed.TotalSeconds;
        int bb = format.BlockBytes, perRow = cols / 256;
        long blocks = (long)rows * perRow, same = 0, worse = 0;
        var a = new float[256];
        var b = new float[256];
        for (long k = 0; k < blocks; k++)
        {
            var ca = cpu.AsSpan((int)(k * bb), bb);
            var ga = dev.AsSpan((int)(k * bb), bb);
            if (ca.SequenceEqual(ga)) { same++; continue; }
            format.DequantizeRow(ca, a);
            format.DequantizeRow(ga, b);
            var xs = x.AsSpan((int)(k * 256), 256);
            double ec = 0, eg = 0;
            for (int i = 0; i < 256; i++)
            {
                double w = importance?[(int)(k % perRow) * 256 + i] ?? 1.0;
                ec += w * (xs[i] - a[i]) * (xs[i] - a[i]);
                eg += w * (xs[i] - b[i]) * (xs[i] - b[i]);
            }
            if (eg > ec * (1 + 1e-6) + 1e-30) worse++;
        }
        return new KQuantAgreement(name, type.ToString(), importance is not null, blocks, same, worse, cpuSeconds, gpuSeconds);
    }

    /// <summary>
    /// Layer 0 of <paramref name="model"/> on <paramref name="set"/>: the q/k/v input and the down-projection input Hessians
    /// on both sides, then every matrix quantized with <paramref name="types"/> three ways — CPU (CPU Hessian), device sweep
    /// with the CPU Hessian, and fully on the device (device Hessian) — compared with the CPU.
    /// </summary>
    public static List<GptqAgreement> Gptq(IGptqAccelerator gpu, LoadedModel model, CalibrationSet set, IReadOnlyList<string> types)
    {
        var c = model.Config;
        var llama = new LlamaModel(model, set.SequenceLength);
        var cache = llama.CreateCache(set.SequenceLength);
        using var cpuQkv = new GptqHessian(c.Dim);
        using var cpuDown = new GptqHessian(c.HiddenDim);
        using var gpuQkv = gpu.CreateHessian(c.Dim);
        using var gpuDown = gpu.CreateHessian(c.HiddenDim);
        llama.Observer = new Capture(cpuQkv, cpuDown, gpuQkv, gpuDown);
        var hidden = new float[set.SequenceLength * c.Dim];
        foreach (var window in set.Windows)
        {
            cache.Clear();
            llama.Embed(window, hidden);
            llama.ForwardLayer(0, cache, hidden, set.SequenceLength);
        }
        llama.Observer = null;
        var hc = new[] { cpuQkv.ToMatrix(), cpuDown.ToMatrix() };
        var hg = new[] { gpuQkv.ToMatrix(), gpuDown.ToMatrix() };
        var L = model.Weights.Layers[0];
        var rows = new List<GptqAgreement>();
        foreach (var type in types)
        {
            var options = GptqTypes.Parse(type);
            foreach (var (name, w, which) in new[] { ("blk.0.attn_q", L.Wq, 0), ("blk.0.attn_v", L.Wv, 0), ("blk.0.ffn_down", L.Down, 1) })
            {
                var dense = new float[w.Rows * w.Cols];
                for (int r = 0; r < w.Rows; r++) w.DequantizeRow(r, dense.AsSpan(r * w.Cols, w.Cols));
                var clock = Stopwatch.StartNew();
                var cpu = GptqQuantizer.Quantize(dense, w.Rows, w.Cols, hc[which], options);
                double cpuSeconds = clock.Elapsed.TotalSeconds;
                clock.Restart();
                var sweep = GptqQuantizer.Quantize(dense, w.Rows, w.Cols, hc[which], options, gpu);
                double sweepSeconds = clock.Elapsed.TotalSeconds;
                var full = GptqQuantizer.Quantize(dense, w.Rows, w.Cols, hg[which], options, gpu);
                double ec = OutputError(dense, cpu, hc[which]);
                rows.Add(Row(name, type, "cpu", cpu, sweep, ec, OutputError(dense, sweep, hc[which]), 0, cpuSeconds, sweepSeconds));
                rows.Add(Row(name, type, "gpu", cpu, full, ec, OutputError(dense, full, hc[which]), RelDiff(hg[which], hc[which]), cpuSeconds, sweepSeconds));
            }
        }
        return rows;
    }

    private static GptqAgreement Row(string name, string type, string hessian, GptqResult cpu, GptqResult gpu, double ec, double eg, double hdiff,
        double cpuSeconds, double gpuSeconds)
    {
        long same = 0;
        for (int i = 0; i < cpu.Q.Length; i++) if (cpu.Q[i] == gpu.Q[i]) same++;
        return new GptqAgreement(name, type, hessian, cpu.Q.Length, same, ec, eg, hdiff, cpuSeconds, gpuSeconds);
    }

    /// <summary>‖(W − Ŵ)X‖² / ‖WX‖² = Σ_r d_r H d_rᵀ / Σ_r w_r H w_rᵀ (H the calibration Hessian, any positive scale).</summary>
    public static double OutputError(float[] w, GptqResult q, double[] h)
    {
        int rows = q.Rows, n = q.Cols;
        var deq = q.Dequantize();
        // Per-row terms first, then summed in row order, so the value does not depend on thread scheduling.
        var num = new double[rows];
        var den = new double[rows];
        Parallel.For(0, rows, r =>
        {
            var d = new double[n];
            var x = new double[n];
            for (int j = 0; j < n; j++) { x[j] = w[r * n + j]; d[j] = x[j] - deq[r * n + j]; }
            double a = 0, b = 0;
            for (int i = 0; i < n; i++)
            {
                double hd = 0, hx = 0;
                for (int j = 0; j < n; j++) { hd += h[(long)i * n + j] * d[j]; hx += h[(long)i * n + j] * x[j]; }
                a += d[i] * hd;
                b += x[i] * hx;
            }
            num[r] = a;
            den[r] = b;
        });
        double sn = 0, sd = 0;
        for (int r = 0; r < rows; r++) { sn += num[r]; sd += den[r]; }
        return sd == 0 ? 0 : sn / sd;
    }

    private static double RelDiff(double[] a, double[] b)
    {
        double max = 0, diff = 0;
        for (int i = 0; i < b.Length; i++) { max = Math.Max(max, Math.Abs(b[i])); diff = Math.Max(diff, Math.Abs(a[i] - b[i])); }
        return max == 0 ? diff : diff / max;
    }

    private sealed class Capture(IGptqHessian cpuQkv, IGptqHessian cpuDown, IGptqHessian gpuQkv, IGptqHessian gpuDown) : IActivationObserver
    {
        public void Observe(int layer, LinearInput input, ReadOnlySpan<float> rows, int tokens, int width)
        {
            if (layer != 0) return;
            if (input == LinearInput.AttentionQkv) { cpuQkv.Add(rows, tokens); gpuQkv.Add(rows, tokens); }
            else if (input == LinearInput.FfnDown) { cpuDown.Add(rows, tokens); gpuDown.Add(rows, tokens); }
        }
    }
}
