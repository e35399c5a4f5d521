using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using QuantServe.Engine.Gpu;
using QuantServe.Engine.Gpu.Cuda;
using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;
using QuantServe.Engine.Quantization.Formats;
using QuantServe.Engine.Quantization.Rtn;
using QuantServe.Engine.Tensors;

namespace QuantServe.Api.Cli;

/// <summary>
/// <c>quantserve gpu info|check|bench</c>: the CUDA backend's self-checks and benchmarks, runnable where <c>dotnet test</c>
/// is not (a published binary on a GPU machine). <c>check</c> compares GPU logits and greedy ids with the CPU forward pass
/// and the shared references; <c>bench</c> measures fused dequantize-GEMV bandwidth and decode tokens/s.
/// </summary>
public static class GpuCommand
{
    private static readonly Option<string> Device = new("--device") { Description = "cuda or cuda:N", DefaultValueFactory = _ => "cuda:0" };

    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var gpu = new Command("gpu", "CUDA backend: device info, GPU-vs-CPU checks and benchmarks.");
        gpu.Subcommands.Add(Info());
        gpu.Subcommands.Add(Check());
        gpu.Subcommands.Add(Bench());
        return gpu;
    }

    private static CudaBackend Open(string device, TextWriter o)
    {
        var selection = DeviceSelection.Parse(device);
        var backend = CudaBackend.Select(selection, o.WriteLine) ?? throw new CudaException($"no CUDA device selected by '{device}'");
        o.WriteLine($"kernels: NVRTC {backend.Kernels.NvrtcVersion}, {(backend.Kernels.FromCache ? "cached cubin" : "compiled")} in {backend.Kernels.CompileSeconds:F2} s ({Nvrtc.CacheDirectory})");
        return backend;
    }

    private static Command Info()
    {
        var command = new Command("info", "List CUDA devices and compile the kernels for the selected one.") { Device };
        command.SetAction(parse =>
        {
            var o = parse.InvocationConfiguration.Output;
            var driver = CudaDriver.TryLoad(out var failure);
            if (driver == null) { o.WriteLine($"no CUDA: {failure}"); return 1; }
            o.WriteLine($"CUDA driver {driver.Version / 1000}.{driver.Version % 1000 / 10}, {driver.DeviceCount} device(s)");
            for (int i = 0; i < driver.DeviceCount; i++)
            {
                var d = driver.Describe(i);
                o.WriteLine($"  {d}, reported DRAM bandwidth {d.ReportedBandwidthGBs:F0} GB/s");
            }
            using var backend = Open(parse.GetValue(Device)!, o);
            return 0;
        });
        return command;
    }

    // The last prompt is long enough (> 64 tokens with either vocabulary) that prefill runs the tiled prompt attention over
    // two query tiles and the tensor-core GEMM with a partial token tile.
    private static readonly string[] DefaultPrompts = ["Once upon a time", "Lily and Ben", "The little dog", "One day",
        "Once upon a time, there was a little girl named Lily. She loved to play outside in the sunshine with her friend Ben. " +
        "One day, they saw a big red ball in the park. Ben ran to get it, and Lily laughed. They played with the ball all day " +
        "until the sun went down, and then they went home happy."];

    private static Command Check()
    {
        var models = new Option<string[]>("--model", "-m") { Description = "Model to check (repeatable)", Required = true, AllowMultipleArgumentsPerToken = true };
        var rtn = new Option<string[]>("--rtn") { Description = "Also check these QuantServe RTN types of each model (quantized to a temp folder)", AllowMultipleArgumentsPerToken = true };
        var steps = new Option<int>("--steps") { Description = "Greedy tokens per prompt", DefaultValueFactory = _ => 24 };
        var proseRef = new Option<string?>("--prose-reference") { Description = "prose-15m reference.json: its greedy ids are checked on models whose vocabulary is 32000" };
        var storiesRef = new Option<string?>("--stories-reference") { Description = "folder with stories260K greedy-*.txt: GPU greedy text is checked on 512-token models" };
        var command = new Command("check", "GPU logits and greedy ids against the CPU forward pass and the references; prints one row per model and format.")
            { Device, models, rtn, steps, proseRef, storiesRef };
        command.SetAction(parse =>
        {
            var o = parse.InvocationConfiguration.Output;
            using var backend = Open(parse.GetValue(Device)!, o);
            int failures = 0;
            o.WriteLine();
            o.WriteLine($"| model | format | GPU kernels | max abs logit diff vs CPU | vs CPU dequantized F32 | max abs logit | greedy ids = CPU ({parse.GetValue(steps)} × {DefaultPrompts.Length}) | = CPU dequantized | reference | result |");
            o.WriteLine("|---|---|---|---:|---:|---:|---|---|---|---|");
            foreach (var path in parse.GetValue(models)!)
            {
                var variants = new List<(string Label, Func<LoadedModel> Load)> { ("as stored", () => ModelLoader.Load(path)) };
                foreach (var type in parse.GetValue(rtn) ?? [])
                    variants.Add((type, () =>
                    {
                        // In memory (layers to the type, embedding and head to int8 as RtnQuantizer does): works for GGUF sources too.
                        var format = RtnFormats.Parse(type) ?? throw new ArgumentException($"unknown RTN type {type}");
                        return DequantizedReference.Requantize(ModelLoader.Load(path), format,
                            type.StartsWith("int8", StringComparison.Ordinal) ? format : RtnFormats.Parse("int8")!, ownSource: true);
                    }));
                foreach (var (label, load) in variants)
                {
                    try { failures += CheckOne(backend, load(), Path.GetFileName(path.TrimEnd('/')), label, parse.GetValue(steps), parse.GetValue(proseRef), parse.GetValue(storiesRef), o); }
                    catch (Exception e) when (e is CudaException or ModelLoadException or NotSupportedException or ArgumentException)
                    {
                        failures++;
                        o.WriteLine($"| {Path.GetFileName(path)} | {label} | error: {e.Message.ReplaceLineEndings(" ")} | | | | | | | FAIL |");
                    }
                }
            }
            o.WriteLine();
            o.WriteLine(failures == 0 ? "gpu check: all rows pass" : $"gpu check: {failures} row(s) FAILED");
            return failures == 0 ? 0 : 1;
        });
        return command;
    }

    private static string Kernels(GpuLlamaModel m) => string.Join(", ", m.Matrices.GroupBy(x => x.Dequantized ? $"{x.Format}→F16" : x.Kind.ToString())
        .Select(g => $"{g.Key}×{g.Count()}"));

    private static int CheckOne(CudaBackend backend, LoadedModel model, string name, string label, int steps, string? proseRef, string? storiesRef, TextWriter o)
    {
        using var _ = model;
        var cpu = new LlamaModel(model, 256);
        using var gpu = new GpuLlamaModel(backend.Device, backend.Kernels, model, 256);
        var tok = model.Tokenizer;
        var prompts = DefaultPrompts.Select(p => tok.Encode(p, addBos: true)).ToList();
        var g = DeviceComparison.RunDevice(gpu, prompts, steps);
        var r = DeviceComparison.Compare(DeviceComparison.RunCpu(cpu, prompts, steps), g, model.Config.VocabSize);
        bool quantized = gpu.Matrices.Any(m => m.Kind is not (GpuKernelKind.F32 or GpuKernelKind.F16) || m.Dequantized);
        ComparisonResult? rd = null;
        if (quantized)
        {
            using var deq = DequantizedReference.Create(model);
            rd = DeviceComparison.Compare(DeviceComparison.RunCpu(new LlamaModel(deq, 256), prompts, steps), g, model.Config.VocabSize);
        }
        string format = label == "as stored" ? string.Join("/", model.Weights.Layers[0].Matrices.Select(m => m.Format.Name).Distinct()) : label;
        // Unquantized models: the same float math in another summation order, so a tight bound. Quantized: the CPU kernels
        // quantize activations to int8 (per 32, or per 256 for k-quants) and the GPU's integer-dot kernels per 32, so the
        // closer of the two CPU references (as loaded / dequantized to F32) must be within 3% of the logit range.
        var best = rd != null && rd.MaxAbsLogitDiff < r.MaxAbsLogitDiff ? rd : r;
        var (agree, total) = best.Agreement;
        // Greedy agreement of quantized models is reported, not required: with int8 activations on both sides (rounded
        // differently) near-tied logits of these small models flip.
        bool ok = quantized
            ? best.MaxAbsLogitDiff <= 0.03 * best.LogitScale
            : r.MaxAbsLogitDiff <= 1e-3 * Math.Max(1, r.LogitScale) && r.GreedyEqual;
        string reference = "";
        if (storiesRef != null && model.Config.VocabSize == 512 && label == "as stored")
        {
            bool pass = true;
            foreach (var (prompt, n, file) in new[] { ("Once upon a time", 200, "greedy-once-upon-a-time-200.txt"), ("Lily and Ben", 120, "greedy-lily-and-ben-120.txt") })
            {
                var ids = tok.Encode(prompt, addBos: true);
                var run = DeviceComparison.RunDevice(gpu, [ids], n - ids.Length + 1, readLogits: false).Ids[0];
                int stop = Array.IndexOf(run, tok.BosId);
                var generated = stop >= 0 ? run[..stop] : run;
                string text = tok.Decode([.. ids, .. generated]) + "\n";
                string expected = File.ReadAllText(Path.Combine(storiesRef, file));
                pass &= text == expected;
            }
            reference = pass ? "llama2.c run.c text equal" : "llama2.c text DIFFERS";
            ok &= pass;
        }
        if (proseRef != null && model.Config.VocabSize == 32000)
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(proseRef));
            int equal = 0, count = 0, tokensEqual = 0, tokensTotal = 0;
            var refs = doc.RootElement.GetProperty("references").EnumerateArray().Select(e => (
                Input: e.GetProperty("input_ids").EnumerateArray().Select(v => v.GetInt32()).ToArray(),
                Greedy: e.GetProperty("greedy_ids").EnumerateArray().Select(v => v.GetInt32()).ToArray())).ToList();
            int maxSteps = refs.Max(x => x.Greedy.Length - x.Input.Length);
            var run = DeviceComparison.RunDevice(gpu, refs.Select(x => x.Input).ToList(), maxSteps, readLogits: false).Ids;
            for (int i = 0; i < refs.Count; i++)
            {
                var full = refs[i].Input.Concat(run[i]).Take(refs[i].Greedy.Length).ToArray();
                count++;
                if (full.AsSpan().SequenceEqual(refs[i].Greedy)) equal++;
                int k = refs[i].Input.Length;
                while (k < full.Length && full[k] == refs[i].Greedy[k]) k++;
                tokensEqual += k - refs[i].Input.Length;
                tokensTotal += refs[i].Greedy.Length - refs[i].Input.Length;
            }
            reference = $"transformers greedy: {equal}/{count} prompts equal ({tokensEqual}/{tokensTotal} leading tokens)";
            if (label == "as stored" && format.Contains("F16")) ok &= equal == count;
        }
        static string Greedy(ComparisonResult x) => x.GreedyEqual ? "yes" : $"no ({x.Agreement.Agree}/{x.Agreement.Total})";
        o.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {name} | {format} | {Kernels(gpu)} | {r.MaxAbsLogitDiff:G3} | {(rd == null ? "=" : rd.MaxAbsLogitDiff.ToString("G3", CultureInfo.InvariantCulture))} | {r.LogitScale:F2} | {Greedy(r)} | {(rd == null ? "=" : Greedy(rd))} | {reference} | {(ok ? "pass" : "FAIL")} |"));
        return ok ? 0 : 1;
    }

    private static void GemmTable(CudaBackend backend, string[] names, TextWriter o)
    {
        o.WriteLine();
        o.WriteLine("| format (path) | N × K | T | µs | TFLOP/s | max rel err vs CPU dequant (double) |");
        o.WriteLine("|---|---|---:|---:|---:|---:|");
        void Row(GemmBenchResult r) => o.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {r.Format} | {r.Rows}×{r.Cols} | {r.Tokens} | {r.Microseconds:F1} | {r.Tflops:F1} | {r.MaxRelError:E1} |"));
        foreach (var name in names)
        {
            var format = TensorFormats.ForName(name) ?? throw new ArgumentException($"unknown format {name}");
            bool unquantized = format.Ggml == GgmlType.F16;
            // Partial tiles, K splits and odd token counts first (checked, timing incidental), then the timed shape.
            Row(GpuPrefillBench.Gemm(backend, format, 1000, 1280, 77, 20));
            Row(GpuPrefillBench.Gemm(backend, format, 4096, 4096, 16, 50));
            Row(GpuPrefillBench.Gemm(backend, format, 4096, 4096, 512, 50));
            if (unquantized) Row(GpuPrefillBench.Gemm(backend, format, 4096, 4096, 512, 50, split: false));
            if (name is "Q4_K" or "int4-g128")
                foreach (var (n, k) in new[] { (2048, 2048), (256, 2048), (5632, 2048), (2048, 5632) }) // TinyLlama's q/o, k/v, gate/up, down
                    Row(GpuPrefillBench.Gemm(backend, format, n, k, 512, 50));
            Row(GpuPrefillBench.Gemm(backend, format, 4096, 4096, 16, 50, gemm: false));
            Row(GpuPrefillBench.Gemm(backend, format, 4096, 4096, 512, 10, gemm: false));
        }
    }

    private static Command Bench()
    {
        var gemv = new Option<bool>("--gemv") { Description = "Fused dequantize-GEMV bandwidth on 8192×8192 and 4096×14336" };
        var formats = new Option<string[]>("--formats") { Description = "GEMV formats", AllowMultipleArgumentsPerToken = true, DefaultValueFactory = _ => ["Q4_K", "int4-g128", "Q8_0", "Q4_0", "Q5_K", "Q6_K", "int8", "nf4", "F16"] };
        var iterations = new Option<int>("--iterations") { Description = "GEMV launches timed per measurement", DefaultValueFactory = _ => 200 };
        var models = new Option<string[]>("--model", "-m") { Description = "Models to decode (repeatable)", AllowMultipleArgumentsPerToken = true };
        var batches = new Option<int[]>("--batch") { Description = "Batch sizes (decode and GEMV)", AllowMultipleArgumentsPerToken = true, DefaultValueFactory = _ => [1, 16] };
        var steps = new Option<int>("--steps") { Description = "Decode steps timed", DefaultValueFactory = _ => 128 };
        var prompt = new Option<int>("--prompt-tokens") { Description = "Prompt tokens prefilled per sequence before timing", DefaultValueFactory = _ => 32 };
        var requantize = new Option<string?>("--requantize") { Description = "Re-quantize each model's layer matrices in memory to this RTN type (head: int8) before decoding, e.g. int4-g128" };
        var peak = new Option<double>("--peak-gbs") { Description = "Peak DRAM bandwidth for the % column and the bound (H100 SXM HBM3: 3350)", DefaultValueFactory = _ => GpuBench.H100PeakGBs };
        var attention = new Option<bool>("--attention") { Description = "Split-K attention vs one block per head: agreement on ragged contexts 1..4096 and time per context" };
        var longContext = new Option<int>("--long-context") { Description = "Also decode batch 1 after a prompt of this many tokens (cut so prompt + steps fit the context), with one-block and split-K attention" };
        var gemm = new Option<bool>("--gemm") { Description = "Tensor-core GEMM TFLOP/s for 4096×4096×512 per format (and the GEMV tiles), each checked against the CPU's DequantizeRow in double" };
        var gemmFormats = new Option<string[]>("--gemm-formats") { Description = "GEMM formats", AllowMultipleArgumentsPerToken = true, DefaultValueFactory = _ => ["Q4_K", "Q6_K", "Q8_0", "Q4_0", "Q5_K", "int4-g128", "int4-g64-asym", "int8", "nf4", "F16", "Q4_1"] };
        var prefill = new Option<int>("--prefill") { Description = "Also time prompt processing of this many tokens per model, GEMM path and GEMV path, and decode on both paths" };
        var command = new Command("bench", "GEMV bandwidth per format, tensor-core GEMM TFLOP/s, split-K attention, prefill and decode tokens/s against the bandwidth bound.")
            { Device, gemv, formats, iterations, models, batches, steps, prompt, requantize, peak, attention, longContext, gemm, gemmFormats, prefill };
        command.SetAction(parse =>
        {
            var o = parse.InvocationConfiguration.Output;
            using var backend = Open(parse.GetValue(Device)!, o);
            double pk = parse.GetValue(peak);
            if (parse.GetValue(gemv))
            {
                o.WriteLine();
                o.WriteLine($"| format | rows × cols | batch | MB read | µs stream | GB/s | % of {pk:F0} GB/s | µs graph | µs graph+PDL | best GB/s | best % | max rel err vs CPU dequant |");
                o.WriteLine("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
                foreach (var (rows, cols) in new[] { (8192, 8192), (4096, 14336) })
                    foreach (var name in parse.GetValue(formats)!)
                    {
                        var format = TensorFormats.ForName(name) ?? throw new ArgumentException($"unknown format {name}");
                        foreach (int b in parse.GetValue(batches)!)
                        {
                            var r = GpuBench.Gemv(backend, format, rows, cols, b, parse.GetValue(iterations), pk);
                            o.WriteLine(string.Create(CultureInfo.InvariantCulture,
                                $"| {r.Format} | {r.Rows}×{r.Cols} | {r.Batch} | {r.Bytes / 1e6:F1} | {r.Microseconds:F1} | {r.GBs:F0} | {r.PercentOfPeak:F1}% | {r.GraphMicroseconds:F1} | {(r.PdlMicroseconds is { } p ? p.ToString("F1", CultureInfo.InvariantCulture) : "n/a")} | {r.BestGBs:F0} | {100 * r.BestGBs / pk:F1}% | {r.MaxRelError:E1} |"));
                        }
                    }
            }
            int failures = 0;
            if (parse.GetValue(attention))
            {
                o.WriteLine();
                o.WriteLine("| contexts (positions attended per token) | heads / kv heads × head dim | max splits | max rel diff split vs single | single µs | split-K µs | result |");
                o.WriteLine("|---|---|---:|---:|---:|---:|---|");
                int[] ragged = [1, 2, 3, 31, 32, 33, 64, 65, 100, 127, 129, 500, 1000, 2047, 3001, 4096];
                foreach (var (h, kvh, hd) in new[] { (32, 4, 64), (32, 8, 128) })
                    foreach (var ctx in new[] { ragged, [1], [128], [512], [1024], [2048], [4096] })
                    {
                        var r = GpuBench.Attention(backend, h, kvh, hd, ctx, parse.GetValue(iterations));
                        bool ok = r.MaxRelDiff <= 1e-5;
                        failures += ok ? 0 : 1;
                        o.WriteLine(string.Create(CultureInfo.InvariantCulture,
                            $"| {(ctx.Length > 1 ? $"{ctx.Length} ragged: {r.Contexts}" : r.Contexts)} | {r.Heads}/{r.KvHeads} × {r.HeadDim} | {r.Splits} | {r.MaxRelDiff:E1} | {r.SingleMicroseconds:F1} | {r.SplitMicroseconds:F1} | {(ok ? "pass" : "FAIL")} |"));
                    }
            }
            if (parse.GetValue(gemm)) GemmTable(backend, parse.GetValue(gemmFormats)!, o);
            int prefillTokens = parse.GetValue(prefill);
            foreach (var path in parse.GetValue(models) ?? [])
            {
                var rq = parse.GetValue(requantize);
                var loaded = ModelLoader.Load(path);
                using var model = rq == null ? loaded
                    : DequantizedReference.Requantize(loaded, RtnFormats.Parse(rq) ?? throw new ArgumentException($"unknown RTN type {rq}"), RtnFormats.Parse("int8")!, ownSource: true);
                int maxBatch = Math.Max(Math.Max(parse.GetValue(prompt), prefillTokens), parse.GetValue(batches)!.Max());
                using var gpu = new GpuLlamaModel(backend.Device, backend.Kernels, model, Math.Max(maxBatch, 16));
                o.WriteLine();
                o.WriteLine($"{Path.GetFileName(path)}{(rq != null ? $" re-quantized to {rq}" : "")}: {Kernels(gpu)}; weights read per step {gpu.WeightReadBytesPerStep / 1e6:F1} MB");
                if (prefillTokens > 0)
                {
                    o.WriteLine($"| prefill path | prompt tokens | ms (best of 5) | tokens/s | TFLOP/s (2·tokens·layer params ÷ time) | max abs last-token logit diff vs GEMV path |");
                    o.WriteLine("|---|---:|---:|---:|---:|---:|");
                    foreach (var r in GpuPrefillBench.Prefill(gpu, backend.Kernels, prefillTokens, 5))
                        o.WriteLine(string.Create(CultureInfo.InvariantCulture,
                            $"| {r.Path} | {r.Tokens} | {r.Milliseconds:F2} | {r.TokensPerSecond:F0} | {r.Tflops:F1} | {r.MaxAbsLogitDiff:G3} |"));
                    o.WriteLine();
                }
                o.WriteLine($"| batch | products | steps | tokens/s | bound tokens/s (batch × {pk:F0} GB/s ÷ bytes/step) | % of bound | device bytes (weights+scratch+KV) | VramEstimator total |");
                o.WriteLine("|---:|---|---:|---:|---:|---:|---:|---:|");
                int gemmMin = backend.Kernels.GemmMinTokens;
                foreach (int b in parse.GetValue(batches)!)
                    // Batches that reach the GEMM also on the GEMV kernels when prefill is measured; batch 1 also with
                    // without programmatic dependent launch (on by default where supported), to show what overlapping launches gives.
                    foreach (bool useGemm in prefillTokens > 0 && backend.Kernels.UsesGemm(b) ? (bool[])[false, true] : [backend.Kernels.UsesGemm(b)])
                        foreach (bool pdl in b == 1 && backend.Kernels.CanLaunchProgrammatic ? (bool[])[false, true] : [false])
                        {
                            backend.Kernels.GemmMinTokens = useGemm ? gemmMin : int.MaxValue;
                            gpu.ProgrammaticLaunch = pdl;
                            var r = GpuBench.Decode(gpu, b, parse.GetValue(prompt), parse.GetValue(steps), pk);
                            backend.Kernels.GemmMinTokens = gemmMin;
                            o.WriteLine(string.Create(CultureInfo.InvariantCulture,
                                $"| {r.Batch}{(pdl ? " (PDL)" : "")} | {(useGemm ? "GEMM" : "GEMV")} | {r.Steps} | {r.TokensPerSecond:F0} | {r.BoundTokensPerSecond:F0} | {100 * r.TokensPerSecond / r.BoundTokensPerSecond:F1}% | {r.DeviceBytes / 1e6:F0} MB | {r.EstimatedBytes / 1e6:F0} MB |"));
                        }
                gpu.ProgrammaticLaunch = backend.Kernels.CanLaunchProgrammatic;
                int lc = parse.GetValue(longContext);
                if (lc > 0)
                {
                    int st = parse.GetValue(steps);
                    o.WriteLine();
                    // Prompt + timed steps + the first sampled token must fit the model's context.
                    int fit = model.Config.ContextLength - st - 1;
                    if (lc > fit) o.WriteLine($"--long-context {lc} + {st} steps exceeds the {model.Config.ContextLength}-position context: prompt cut to {fit} tokens");
                    lc = Math.Max(1, Math.Min(lc, fit));
                    o.WriteLine($"batch 1 after a {lc}-token prompt (contexts {lc + 1}..{lc + st}):");
                    o.WriteLine("| attention | tokens/s | bound tokens/s (weights only) |");
                    o.WriteLine("|---|---:|---:|");
                    foreach (bool split in new[] { false, true })
                    {
                        gpu.SplitAttention = split;
                        var r = GpuBench.Decode(gpu, 1, lc, st, pk);
                        o.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {(split ? "split-K" : "one block per head")} | {r.TokensPerSecond:F0} | {r.BoundTokensPerSecond:F0} |"));
                    }
                    gpu.SplitAttention = true;
                }
            }
            return failures == 0 ? 0 : 1;
        });
        return command;
    }
}
