using System.Diagnostics;
using System.Runtime.InteropServices;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Gpu;

/// <summary>One GEMM measurement: <c>Y[T×N] = X[T×K]·Wᵀ</c>.</summary>
/// <param name="Format">Format name and path ("GEMM", "GEMM x hi+lo", or "GEMV" for the 16-token GEMV tiles).</param>
/// <param name="Rows">N, output features.</param>
/// <param name="Cols">K, input features.</param>
/// <param name="Tokens">T.</param>
/// <param name="Microseconds">Mean time of one product (CUDA events around back-to-back launches).</param>
/// <param name="Tflops">2·T·N·K ÷ time.</param>
/// <param name="MaxRelError">Largest |y_gpu − y_ref| ÷ max|y_ref| over sampled rows and every token, y_ref = the CPU's DequantizeRow · x in double.</param>
public sealed record GemmBenchResult(string Format, int Rows, int Cols, int Tokens, double Microseconds, double Tflops, double MaxRelError);

/// <summary>One prompt-processing measurement of a whole model.</summary>
/// <param name="Path">Which products and which attention ran, e.g. "GEMM + prefill attention".</param>
/// <param name="Tokens">Prompt tokens, one sequence, one piece.</param>
/// <param name="Milliseconds">Best time of one prefill (forward to the last token's logits, arg-max to the host).</param>
/// <param name="TokensPerSecond">Tokens ÷ time.</param>
/// <param name="Tflops">2 · tokens · (parameters of the layer matrices) ÷ time (attention and the head's one row excluded).</param>
/// <param name="MaxAbsLogitDiff">Largest |logit − logit of the GEMV path| of the last token (0 for the GEMV path itself).</param>
public sealed record PrefillBenchResult(string Path, int Tokens, double Milliseconds, double TokensPerSecond, double Tflops, double MaxAbsLogitDiff);

/// <summary>Benchmarks of the tensor-core GEMM and of prompt processing, each with its correctness check.</summary>
public static unsafe class GpuPrefillBench
{
    /// <summary>
    /// Times and checks the product of a random <paramref name="rows"/> × <paramref name="cols"/> matrix in
    /// <paramref name="format"/> with <paramref name="tokens"/> random activation rows. <paramref name="gemm"/> false
    /// measures the GEMV kernels instead; <paramref name="split"/> selects the F32/F16 two-product activations.
    /// </summary>
    public static GemmBenchResult Gemm(CudaBackend backend, TensorFormat format, int rows, int cols, int tokens, int iterations, bool gemm = true, bool split = true)
    {
        var d = backend.Device;
        var k = backend.Kernels;
        var (w, mem) = GpuBench.RandomMatrix(format, rows, cols, 7);
        int before = k.GemmMinTokens;
        bool splitBefore = k.Gemm?.SplitActivationsForUnquantized ?? true;
        try
        {
            using var gm = GpuMatrix.Upload(d, w);
            int xs = (cols + 255) & ~255;
            var x = new float[(long)tokens * xs];
            var rng = new Xoshiro256(11);
            for (int t = 0; t < tokens; t++) for (int c = 0; c < cols; c++) x[(long)t * xs + c] = (float)(rng.NextDouble() * 2 - 1);
            using var dx = d.Allocate(x.Length * 4L);
            using var dy = d.Allocate((long)tokens * rows * 4);
            d.Upload<float>(x, dx.Pointer);
            k.GemmMinTokens = gemm ? 1 : int.MaxValue;
            if (k.Gemm != null) k.Gemm.SplitActivationsForUnquantized = split;
            using var qa = new GpuActivations(d, tokens, cols);
            GpuActivations? q = null;
            if (!gemm && GpuKernels.UsesIntegerDot(gm)) { k.Quantize(dx.Pointer, xs, cols, tokens, qa); q = qa; }
            k.Gemv(gm, dx.Pointer, xs, dy.Pointer, rows, tokens, false, q);
            var y = new float[(long)tokens * rows];
            d.Download(dy.Pointer, y.AsSpan());

            double maxErr = 0, maxRef = 0;
            var row = new float[cols];
            // Sampled rows include the last ones (a partial 128-row tile when rows is not a multiple of 128).
            for (int i = 0; i < 24; i++)
            {
                int r = i < 20 ? (int)((long)i * (rows - 1) / 19) : rows - 1 - (i - 20) * 37 % rows;
                w.DequantizeRow(r, row);
                for (int t = 0; t < tokens; t++)
                {
                    double s = 0;
                    for (int c = 0; c < cols; c++) s += (double)row[c] * x[(long)t * xs + c];
                    maxErr = Math.Max(maxErr, Math.Abs(s - y[(long)t * rows + r]));
                    maxRef = Math.Max(maxRef, Math.Abs(s));
                }
            }
            for (int i = 0; i < 5; i++) k.Gemv(gm, dx.Pointer, xs, dy.Pointer, rows, tokens, false, q);
            double ms = d.Time(() => { for (int i = 0; i < iterations; i++) k.Gemv(gm, dx.Pointer, xs, dy.Pointer, rows, tokens, false, q); });
            double us = ms * 1e3 / iterations;
            string path = !gemm ? "GEMV" + (q != null ? " dp4a" : "") : !GpuGemm.Handles(gm.Kind) ? "GEMV" : split && gm.Kind == GpuKernelKind.F16 && !gm.Dequantized ? "GEMM x hi+lo" : "GEMM";
            return new GemmBenchResult($"{format.Name} ({path})", rows, cols, tokens, us, 2.0 * tokens * rows * cols / (us * 1e-6) / 1e12, maxRef > 0 ? maxErr / maxRef : maxErr);
        }
        finally
        {
            k.GemmMinTokens = before;
            if (k.Gemm != null) k.Gemm.SplitActivationsForUnquantized = splitBefore;
            NativeMemory.AlignedFree((void*)mem);
        }
    }

    /// <summary>
    /// Prefills one sequence of <paramref name="tokens"/> random tokens (one piece: the model must take that many tokens per
    /// piece), best of <paramref name="repeats"/>, on the GEMV + per-token attention path (before), GEMM + per-token
    /// attention, and GEMM + prefill attention; each row reports its last-token logits' largest difference from the first's.
    /// </summary>
    public static PrefillBenchResult[] Prefill(GpuLlamaModel model, GpuKernels kernels, int tokens, int repeats)
    {
        if (tokens > model.MaxBatchTokens) throw new ArgumentException($"{tokens} tokens exceed the model's piece of {model.MaxBatchTokens}");
        var rng = new Xoshiro256(17);
        var prompt = Enumerable.Range(0, tokens).Select(_ => 3 + (int)(rng.NextDouble() * (model.Config.VocabSize - 3))).ToArray();
        long parameters = model.Matrices.SkipLast(1).Sum(m => (long)m.Rows * m.Cols);
        int gemmBefore = kernels.GemmMinTokens, attBefore = model.PrefillAttention.MinRunTokens;
        var results = new List<PrefillBenchResult>();
        float[]? reference = null;
        try
        {
            foreach (var (gemm, tiled) in new[] { (false, false), (true, false), (true, true) })
            {
                kernels.GemmMinTokens = gemm ? gemmBefore : int.MaxValue;
                model.PrefillAttention.MinRunTokens = tiled ? attBefore : int.MaxValue;
                double best = double.MaxValue;
                var logits = new float[model.Config.VocabSize];
                var ids = new int[1];
                for (int i = 0; i < repeats + 1; i++)
                {
                    using var cache = model.CreateCache(tokens);
                    model.Device.Synchronize();
                    var clock = Stopwatch.StartNew();
                    model.Forward([new GpuChunk(cache, prompt)]);
                    model.SampleGreedy(ids);
                    if (i > 0) best = Math.Min(best, clock.Elapsed.TotalMilliseconds);
                    if (i == 0) model.ReadLogits(logits);
                }
                double diff = 0;
                if (reference == null) reference = logits;
                else for (int v = 0; v < logits.Length; v++) diff = Math.Max(diff, Math.Abs(logits[v] - reference[v]));
                results.Add(new PrefillBenchResult($"{(gemm ? "GEMM" : "GEMV tiles")} + {(tiled ? "prefill" : "per-token")} attention", tokens, best,
                    tokens / (best / 1e3), 2.0 * tokens * parameters / (best / 1e3) / 1e12, diff));
            }
        }
        finally
        {
            kernels.GemmMinTokens = gemmBefore;
            model.PrefillAttention.MinRunTokens = attBefore;
        }
        return [.. results];
    }
}
