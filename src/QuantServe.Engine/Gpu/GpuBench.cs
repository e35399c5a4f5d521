using System.Diagnostics;
using System.Runtime.InteropServices;
using QuantServe.Engine.Evaluation;
using QuantServe.Engine.Gpu.Cuda;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;
using QuantServe.Engine.Quantization.Formats;
using QuantServe.Engine.Tensors;
using QuantServe.Engine.Tensors.Formats;

namespace QuantServe.Engine.Gpu;

/// <summary>One fused dequantize-GEMV measurement.</summary>
/// <param name="Format">Format name, with "(dp4a)" when the integer-dot kernel ran.</param>
/// <param name="Rows">Output features.</param>
/// <param name="Cols">Input features.</param>
/// <param name="Batch">Activation vectors per product.</param>
/// <param name="GBs">Bytes ÷ time.</param>
/// <param name="PercentOfPeak">GBs as a percentage of the peak bandwidth given.</param>
/// <param name="Bytes">Bytes the kernel reads from the weight matrix (codes and scales).</param>
/// <param name="Microseconds">Mean time of one product: CUDA events around many back-to-back launches from the host.</param>
/// <param name="MaxRelError">Largest |y_gpu − y_ref| / max|y_ref| over sampled rows, y_ref from the CPU's DequantizeRow in double.</param>
/// <param name="GraphMicroseconds">Mean time of one product when the same launches are replayed as one CUDA graph (how a decode step runs).</param>
/// <param name="PdlMicroseconds">The graph with programmatic dependent launch between the products (null where the device has none).</param>
public sealed record GemvBenchResult(string Format, int Rows, int Cols, int Batch, long Bytes, double Microseconds, double GBs, double PercentOfPeak, double MaxRelError,
    double GraphMicroseconds, double? PdlMicroseconds)
{
    /// <summary>Bytes ÷ the fastest of the three launch modes.</summary>
    public double BestGBs => Bytes / (Math.Min(Microseconds, Math.Min(GraphMicroseconds, PdlMicroseconds ?? double.MaxValue)) * 1e-6) / 1e9;
}

/// <summary>One decode measurement.</summary>
public sealed record DecodeBenchResult(int Batch, int Steps, double Seconds, double TokensPerSecond, long WeightBytesPerStep,
    double BoundTokensPerSecond, long DeviceBytes, long EstimatedBytes);

/// <summary>Split-K attention against the one-block-per-head kernel for one set of token contexts.</summary>
/// <param name="Contexts">Cache positions each token attends to (positions[t] + 1), comma-separated.</param>
/// <param name="HeadDim">Head dimension.</param>
/// <param name="Heads">Query heads (key/value heads in <paramref name="KvHeads"/>).</param>
/// <param name="KvHeads">Key/value heads.</param>
/// <param name="Splits">Most splits per (token, head) the launch allowed.</param>
/// <param name="MaxRelDiff">max_t max_i |split − single| / max_i |single| over the token's output row.</param>
/// <param name="SingleMicroseconds">Mean time of the one-block-per-(token, head) kernel.</param>
/// <param name="SplitMicroseconds">Mean time of split + combine.</param>
public sealed record AttentionBenchResult(string Contexts, int Heads, int KvHeads, int HeadDim, int Splits, double MaxRelDiff,
    double SingleMicroseconds, double SplitMicroseconds);

/// <summary>GPU benchmarks: GEMV bandwidth per format and whole-model decode speed against the bandwidth bound.</summary>
public static unsafe class GpuBench
{
    /// <summary>The H100 SXM's HBM3 peak the issue measures against, GB/s.</summary>
    public const double H100PeakGBs = 3350;

    /// <summary>Quantizes a deterministic random rows × cols matrix (values ~ N(0, 0.02²)) into <paramref name="format"/>, in native memory.</summary>
    public static (WeightMatrix Matrix, nint Memory) RandomMatrix(TensorFormat format, int rows, int cols, ulong seed)
    {
        long rowBytes = format.RowBytes(cols);
        nint mem = (nint)NativeMemory.AlignedAlloc((nuint)(rowBytes * rows), 64);
        Parallel.For(0, rows, () => new float[cols], (r, _, x) =>
        {
            var rng = new Xoshiro256(seed * 1_000_003UL + (ulong)r);
            for (int c = 0; c < cols; c++)
            {
                // Box-Muller, with a few larger weights as real checkpoints have.
                double u1 = 1 - rng.NextDouble(), u2 = rng.NextDouble();
                x[c] = (float)(0.02 * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2) * (rng.NextDouble() < 0.01 ? 4 : 1));
            }
            var dst = new Span<byte>((byte*)mem + r * rowBytes, (int)rowBytes);
            QuantizeRow(format, x, dst);
            return x;
        }, _ => { });
        return (new WeightMatrix($"bench.{format.Name}", format, rows, cols, (byte*)mem), mem);
    }

    private static void QuantizeRow(TensorFormat format, ReadOnlySpan<float> x, Span<byte> dst)
    {
        switch (format)
        {
            case KQuantFormat k: k.QuantizeRow(x, dst); break;
            case LegacyQuantFormat l: l.QuantizeRow(x, dst); break;
            case RtnFormat r: r.QuantizeRow(x, dst); break;
            case { Ggml: GgmlType.F32 }: MemoryMarshal.AsBytes(x).CopyTo(dst); break;
            case { Ggml: GgmlType.F16 }:
                var h = MemoryMarshal.Cast<byte, Half>(dst);
                for (int i = 0; i < x.Length; i++) h[i] = (Half)x[i];
                break;
            default: throw new NotSupportedException($"no row quantizer for {format.Name}");
        }
    }

    /// <summary>Measures y = W·x for a random <paramref name="rows"/> × <paramref name="cols"/> matrix in <paramref name="format"/>.</summary>
    public static GemvBenchResult Gemv(CudaBackend backend, TensorFormat format, int rows, int cols, int batch, int iterations, double peakGBs = H100PeakGBs)
    {
        var d = backend.Device;
        var (w, mem) = RandomMatrix(format, rows, cols, 7);
        int gemmMin = backend.Kernels.GemmMinTokens;
        backend.Kernels.GemmMinTokens = int.MaxValue; // this measures the GEMV kernels at every batch size
        try
        {
            // The H100's 50 MB L2 would hold a matrix this size across back-to-back launches and flatter the figure, so the
            // timed loop cycles through enough identical copies (≥ 256 MB) that every launch streams its weights from HBM.
            var copies = new List<GpuMatrix> { GpuMatrix.Upload(d, w) };
            while (copies.Count * copies[0].ReadBytes < (256L << 20)) copies.Add(GpuMatrix.Upload(d, w));
            var gm = copies[0];
            int xs = (cols + 255) & ~255;
            var x = new float[batch * xs];
            var rng = new Xoshiro256(11);
            for (int b = 0; b < batch; b++) for (int c = 0; c < cols; c++) x[b * xs + c] = (float)(rng.NextDouble() * 2 - 1);
            using var dx = d.Allocate(x.Length * 4L);
            using var dy = d.Allocate((long)batch * rows * 4);
            d.Upload<float>(x, dx.Pointer);
            // Integer-dot formats read activations quantized once per input vector (shared by every matrix that consumes it);
            // that quantization is done here, outside the timed loop.
            using var qa = new GpuActivations(d, batch, cols);
            GpuActivations? q = null;
            if (GpuKernels.UsesIntegerDot(gm)) { backend.Kernels.Quantize(dx.Pointer, xs, cols, batch, qa); q = qa; }
            backend.Kernels.Gemv(gm, dx.Pointer, xs, dy.Pointer, rows, batch, false, q);
            var y = new float[batch * rows];
            d.Download(dy.Pointer, y.AsSpan());

            double maxErr = 0, maxRef = 0;
            var row = new float[cols];
            for (int i = 0; i < 32; i++)
            {
                int r = (int)((long)i * (rows - 1) / 31);
                w.DequantizeRow(r, row);
                for (int b = 0; b < batch; b++)
                {
                    double s = 0;
                    for (int c = 0; c < cols; c++) s += (double)row[c] * x[b * xs + c];
                    maxErr = Math.Max(maxErr, Math.Abs(s - y[b * rows + r]));
                    maxRef = Math.Max(maxRef, Math.Abs(s));
                }
            }
            for (int i = 0; i < 10; i++) backend.Kernels.Gemv(copies[i % copies.Count], dx.Pointer, xs, dy.Pointer, rows, batch, false, q);
            void Loop() { for (int i = 0; i < iterations; i++) backend.Kernels.Gemv(copies[i % copies.Count], dx.Pointer, xs, dy.Pointer, rows, batch, false, q); }
            double us = d.Time(Loop) * 1e3 / iterations;
            double graphUs = TimeGraph(backend, Loop, programmatic: false) * 1e3 / iterations;
            double? pdlUs = backend.Kernels.CanLaunchProgrammatic ? TimeGraph(backend, Loop, programmatic: true) * 1e3 / iterations : null;
            foreach (var c in copies) c.Dispose();
            double gbs = gm.ReadBytes / (us * 1e-6) / 1e9;
            return new GemvBenchResult(format.Name + (q != null ? " (dp4a)" : ""), rows, cols, batch, gm.ReadBytes, us, gbs, 100 * gbs / peakGBs, maxRef > 0 ? maxErr / maxRef : maxErr,
                graphUs, pdlUs);
        }
        finally
        {
            backend.Kernels.GemmMinTokens = gemmMin;
            NativeMemory.AlignedFree((void*)mem);
        }
    }

    /// <summary>
    /// Milliseconds one replay of <paramref name="work"/> captured as a CUDA graph takes (best of three replays after one warm-up),
    /// its kernels launched programmatically when asked.
    /// </summary>
    private static double TimeGraph(CudaBackend backend, Action work, bool programmatic)
    {
        var d = backend.Device;
        bool was = backend.Kernels.Programmatic;
        nint exec;
        backend.Kernels.Programmatic = programmatic;
        try { exec = d.Capture(work); }
        finally { backend.Kernels.Programmatic = was; }
        try
        {
            d.LaunchGraph(exec);
            double best = double.MaxValue;
            for (int i = 0; i < 3; i++) best = Math.Min(best, d.Time(() => d.LaunchGraph(exec)));
            return best;
        }
        finally { d.DestroyGraph(exec); }
    }

    /// <summary>
    /// Runs both attention kernels on random queries and caches (values uniform in [−1, 1]) for tokens whose contexts are
    /// <paramref name="contexts"/> (ragged in one launch when several), compares the outputs and times
    /// <paramref name="iterations"/> launches of each.
    /// </summary>
    public static AttentionBenchResult Attention(CudaBackend backend, int heads, int kvHeads, int headDim, int[] contexts, int iterations)
    {
        var d = backend.Device;
        var k = backend.Kernels;
        int T = contexts.Length, kvDim = kvHeads * headDim, qs = (heads * headDim + 255) & ~255, cap = contexts.Max();
        var rng = new Xoshiro256(17);
        var cache = new float[(long)cap * kvDim];
        var buffers = new List<DeviceBuffer>();
        DeviceBuffer Alloc(long bytes) { var b = d.AllocateZeroed(bytes); buffers.Add(b); return b; }
        try
        {
            var kPtr = new ulong[T];
            var vPtr = new ulong[T];
            for (int t = 0; t < T; t++)
            {
                var kb = Alloc(cache.Length * 4L);
                var vb = Alloc(cache.Length * 4L);
                for (int i = 0; i < cache.Length; i++) cache[i] = (float)(rng.NextDouble() * 2 - 1);
                d.Upload<float>(cache, kb.Pointer);
                for (int i = 0; i < cache.Length; i++) cache[i] = (float)(rng.NextDouble() * 2 - 1);
                d.Upload<float>(cache, vb.Pointer);
                kPtr[t] = kb.Pointer;
                vPtr[t] = vb.Pointer;
            }
            var q = new float[(long)T * qs];
            for (int i = 0; i < q.Length; i++) q[i] = (float)(rng.NextDouble() * 2 - 1);
            var dq = Alloc(q.Length * 4L);
            d.Upload<float>(q, dq.Pointer);
            var dk = Alloc(T * 8L);
            d.Upload<ulong>(kPtr, dk.Pointer);
            var dv = Alloc(T * 8L);
            d.Upload<ulong>(vPtr, dv.Pointer);
            var dpos = Alloc(T * 4L);
            d.Upload<int>(contexts.Select(c => c - 1).ToArray(), dpos.Pointer);
            var single = Alloc(q.Length * 4L);
            var splitOut = Alloc(q.Length * 4L);
            int splits = k.AttentionSplits(heads, T);
            var scratch = Alloc(GpuKernels.AttentionScratchFloats(T, heads, headDim, splits) * 4);
            float scale = 1f / MathF.Sqrt(headDim);
            void Single() => k.AttentionSingle(dq.Pointer, qs, single.Pointer, qs, dpos.Pointer, dk.Pointer, dv.Pointer, 0, heads, kvHeads, headDim, scale, T);
            void Split() => k.DecodeAttention(dq.Pointer, qs, splitOut.Pointer, qs, dpos.Pointer, dk.Pointer, dv.Pointer, 0, heads, kvHeads, headDim, scale, T,
                scratch.Pointer, splits, null);
            Single();
            Split();
            var a = new float[q.Length];
            var b = new float[q.Length];
            d.Download(single.Pointer, a.AsSpan());
            d.Download(splitOut.Pointer, b.AsSpan());
            double worst = 0;
            for (int t = 0; t < T; t++)
            {
                double diff = 0, max = 0;
                for (int i = 0; i < heads * headDim; i++)
                {
                    diff = Math.Max(diff, Math.Abs(a[t * qs + i] - b[t * qs + i]));
                    max = Math.Max(max, Math.Abs(a[t * qs + i]));
                }
                worst = Math.Max(worst, max > 0 ? diff / max : diff);
            }
            double singleUs = d.Time(() => { for (int i = 0; i < iterations; i++) Single(); }) * 1e3 / iterations;
            double splitUs = d.Time(() => { for (int i = 0; i < iterations; i++) Split(); }) * 1e3 / iterations;
            return new AttentionBenchResult(string.Join(",", contexts), heads, kvHeads, headDim, splits, worst, singleUs, splitUs);
        }
        finally { foreach (var b in buffers) b.Dispose(); }
    }

    /// <summary>
    /// Decode speed: <paramref name="batch"/> sequences each prefilled with <paramref name="promptTokens"/> tokens, then
    /// <paramref name="steps"/> lock-step greedy decode steps timed end to end (forward, device arg-max, ids to the host).
    /// The bound is batch × peak ÷ weight bytes read per step (weights read once per step for batches up to 16).
    /// </summary>
    public static DecodeBenchResult Decode(GpuLlamaModel model, int batch, int promptTokens, int steps, double peakGBs = H100PeakGBs)
    {
        int vocab = model.Config.VocabSize;
        int capacity = promptTokens + steps + 1;
        var caches = Enumerable.Range(0, batch).Select(_ => model.CreateCache(capacity)).ToArray();
        try
        {
            var rng = new Xoshiro256(5);
            var chunks = caches.Select(c => new GpuChunk(c, Enumerable.Range(0, promptTokens).Select(_ => 3 + (int)(rng.NextDouble() * (vocab - 3))).ToArray())).ToArray();
            var ids = new int[batch];
            model.Forward(chunks);
            model.SampleGreedy(ids);
            var clock = Stopwatch.StartNew();
            for (int s = 0; s < steps; s++)
            {
                for (int b = 0; b < batch; b++) chunks[b] = new GpuChunk(caches[b], new[] { ids[b] });
                model.Forward(chunks);
                model.SampleGreedy(ids);
            }
            double seconds = clock.Elapsed.TotalSeconds;
            long bytes = model.WeightReadBytesPerStep;
            double bound = batch * peakGBs * 1e9 / bytes;
            long deviceBytes = model.DeviceBytes + caches.Sum(c => c.Bytes);
            var estimate = VramEstimator.Estimate(model.Source, capacity, batch, KvCacheType.F32);
            return new DecodeBenchResult(batch, steps, seconds, batch * steps / seconds, bytes, bound, deviceBytes, estimate.TotalBytes);
        }
        finally { foreach (var c in caches) c.Dispose(); }
    }
}
