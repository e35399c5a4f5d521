using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using QuantServe.Engine.Evaluation;
using QuantServe.Engine.Gpu;
using QuantServe.Engine.Gpu.Cuda;
using QuantServe.Engine.Models;
using QuantServe.Engine.Quantization.Calibration;
using QuantServe.Engine.Quantization.Gguf;
using QuantServe.Engine.Quantization.Methods;
using QuantServe.Engine.Quantization.Presets;

namespace QuantServe.Api.Cli;

/// <summary>
/// <c>quantserve gpu-quant check|bench</c>: the quantizers' device loops (k-quant searches, GPTQ Hessian and sweep)
/// against the CPU. <c>check</c> prints agreement tables and fails when a criterion is missed (k-quant bytes identical;
/// GPTQ codes ≥ 99.9 % identical and output error within 1 % of the CPU's); <c>bench</c> times whole quantizations on
/// both sides and compares the results.
/// </summary>
public static class GpuQuantCommand
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var command = new Command("gpu-quant", "Quantizers on the GPU: CPU-vs-GPU agreement checks and CPU-vs-GPU timings.");
        command.Subcommands.Add(Check());
        command.Subcommands.Add(Bench());
        return command;
    }

    private static Option<string> DeviceOption() => new("--device") { Description = "cuda or cuda:N", DefaultValueFactory = _ => "cuda:0" };

    private static GpuQuantization Open(string device, TextWriter o)
        => GpuQuantization.Select(DeviceSelection.Parse(device), o.WriteLine) ?? throw new CudaException($"no CUDA device selected by '{device}'");

    private static Command Check()
    {
        var device = DeviceOption();
        var model = new Option<string?>("--model", "-m") { Description = "Model whose matrices are quantized (k-quants) and calibrated (GPTQ)" };
        var calibration = new Option<string?>("--calibration", "-f") { Description = "Calibration text for the GPTQ check (skipped without it)" };
        var samples = new Option<int>("--samples", "-n") { Description = "GPTQ calibration windows", DefaultValueFactory = _ => 16 };
        var seqLen = new Option<int>("--seq-len") { Description = "Tokens per GPTQ calibration window", DefaultValueFactory = _ => 256 };
        var random = new Option<int>("--random-rows") { Description = "Rows of 4096 heavy-tailed random values for the k-quant check", DefaultValueFactory = _ => 2048 };
        var gptqTypes = new Option<string[]>("--gptq-type") { Description = "GPTQ types to check", DefaultValueFactory = _ => ["gptq-int4-g128", "gptq-int4-g128-act", "gptq-int3-g64-asym"] };
        var command = new Command("check", "Compare the GPU's k-quant bytes and GPTQ codes with the CPU's; exit 1 when a criterion is missed.")
        {
            device, model, calibration, samples, seqLen, random, gptqTypes,
        };
        command.SetAction(parse =>
        {
            var o = parse.InvocationConfiguration.Output;
            using var gpu = Open(parse.GetValue(device)!, o);
            using var m = parse.GetValue(model) is { } path ? ModelLoader.Load(path) : null;
            bool ok = true;
            var k = GpuQuantCheck.KQuant(gpu, m, parse.GetValue(random), Environment.ProcessorCount);
            o.WriteLine();
            o.WriteLine($"{"data",-22} {"type",-5} {"imatrix",-7} {"blocks",10} {"identical %",12} {"gpu worse",9} {"cpu s",8} {"gpu s",8}");
            foreach (var r in k)
            {
                o.WriteLine(string.Create(Inv, $"{r.Data,-22} {r.Type,-5} {(r.Weighted ? "yes" : "no"),-7} {r.Blocks,10} {r.IdenticalPercent,12:F4} {r.WorseBlocks,9} {r.CpuSeconds,8:F3} {r.GpuSeconds,8:F3}"));
                ok &= r.Identical == r.Blocks || r.WorseBlocks == 0;
            }
            if (m is not null && parse.GetValue(calibration) is { } calib)
            {
                var set = CalibrationSet.FromText(CalibrationSet.ReadText(calib), m.Tokenizer, m.Config.ContextLength,
                    parse.GetValue(samples), parse.GetValue(seqLen), calib);
                var g = GpuQuantCheck.Gptq(gpu, m, set, parse.GetValue(gptqTypes)!);
                o.WriteLine();
                o.WriteLine($"GPTQ on layer 0, {set.Samples} windows x {set.SequenceLength} tokens; error = |(W-Wq)X|^2/|WX|^2 through the CPU Hessian");
                o.WriteLine($"{"matrix",-16} {"type",-20} {"hessian",-7} {"weights",9} {"identical %",12} {"cpu error",11} {"gpu error",11} {"delta %",8} {"H rel diff",10} {"cpu s",7} {"gpu s",7}");
                foreach (var r in g)
                {
                    o.WriteLine(string.Create(Inv, $"{r.Matrix,-16} {r.Type,-20} {r.Hessian,-7} {r.Weights,9} {r.IdenticalPercent,12:F4} {r.CpuError,11:E4} {r.GpuError,11:E4} {100 * r.ErrorDelta,8:F4} {r.HessianRelDiff,10:E2} {r.CpuSeconds,7:F3} {r.GpuSeconds,7:F3}"));
                    ok &= r.IdenticalPercent >= 99.9 && r.ErrorDelta <= 0.01;
                }
            }
            o.WriteLine();
            o.WriteLine(ok ? "check: PASS" : "check: FAIL");
            return ok ? 0 : 1;
        });
        return command;
    }

    private static Command Bench()
    {
        var device = DeviceOption();
        var gguf = new Option<string?>("--gguf-model") { Description = "Model to quantize to GGUF on both sides (e.g. a `quantserve synth` file)" };
        var type = new Option<string>("--type") { Description = "GGUF file type", DefaultValueFactory = _ => "Q4_K_M" };
        var outDir = new Option<string>("--out-dir") { Description = "Where the two GGUF outputs go (deleted afterwards)", DefaultValueFactory = _ => Path.GetTempPath() };
        var gptqModel = new Option<string?>("--gptq-model") { Description = "Model for the GPTQ timing (HF folder or GGUF)" };
        var gptqType = new Option<string>("--gptq-type") { DefaultValueFactory = _ => "gptq-int4-g128" };
        var calibration = new Option<string?>("--calibration", "-f") { Description = "GPTQ calibration text" };
        var eval = new Option<string?>("--eval") { Description = "Text whose perplexity is measured after GPTQ" };
        var samples = new Option<int>("--samples", "-n") { DefaultValueFactory = _ => 128 };
        var seqLen = new Option<int>("--seq-len") { DefaultValueFactory = _ => 256 };
        var command = new Command("bench", "Time GGUF k-quant quantization and GPTQ on the CPU and the GPU and compare the results.")
        {
            device, gguf, type, outDir, gptqModel, gptqType, calibration, eval, samples, seqLen,
        };
        command.SetAction(parse =>
        {
            var o = parse.InvocationConfiguration.Output;
            using var gpu = Open(parse.GetValue(device)!, o);
            o.WriteLine($"cpu: {Environment.ProcessorCount} threads");
            if (parse.GetValue(gguf) is { } src)
            {
                string dir = parse.GetValue(outDir)!;
                string cpuOut = Path.Combine(dir, "bench-cpu.gguf"), gpuOut = Path.Combine(dir, "bench-gpu.gguf");
                var preset = GgufPresets.Find(parse.GetValue(type)!);
                try
                {
                    var cpu = GgufQuantizer.Quantize(src, cpuOut, new QuantizeOptions { Preset = preset });
                    var dev = GgufQuantizer.Quantize(src, gpuOut, new QuantizeOptions { Preset = preset, Accelerator = gpu });
                    bool same = Hash(cpuOut) == Hash(gpuOut);
                    o.WriteLine();
                    o.WriteLine($"{"gguf " + preset.Name,-22} {"cpu s",8} {"gpu s",8} {"speedup",8}  output");
                    o.WriteLine(string.Create(Inv, $"{Path.GetFileName(src),-22} {cpu.Seconds,8:F2} {dev.Seconds,8:F2} {cpu.Seconds / dev.Seconds,8:F2}  {(same ? "identical bytes" : "DIFFERENT bytes")} ({dev.BytesAfter:N0} tensor bytes, {dev.BitsPerWeight:F2} bpw)"));
                }
                finally
                {
                    File.Delete(cpuOut);
                    File.Delete(gpuOut);
                }
            }
            if (parse.GetValue(gptqModel) is { } gm && parse.GetValue(calibration) is { } calib)
            {
                var options = GptqTypes.Parse(parse.GetValue(gptqType)!);
                string text = CalibrationSet.ReadText(calib);
                string? evalText = parse.GetValue(eval) is { } e ? File.ReadAllText(e) : null;
                var results = new List<(string Side, double Seconds, GptqModelResult R, double Ppl)>();
                foreach (var side in new[] { "cpu", "gpu" })
                {
                    using var model = ModelLoader.Load(gm);
                    var set = CalibrationSet.FromText(text, model.Tokenizer, model.Config.ContextLength, parse.GetValue(samples), parse.GetValue(seqLen), calib);
                    var clock = Stopwatch.StartNew();
                    var r = GptqModelQuantizer.Quantize(model, set, options, side == "gpu" ? gpu : null);
                    double seconds = clock.Elapsed.TotalSeconds;
                    double ppl = evalText is null ? double.NaN : Perplexity.Compute(model, evalText, 256, maxChunks: 40).Value;
                    results.Add((side, seconds, r, ppl));
                }
                long total = 0, same = 0;
                foreach (var (name, c) in results[0].R.Matrices)
                {
                    var g = results[1].R.Matrices[name];
                    total += c.Q.Length;
                    for (int i = 0; i < c.Q.Length; i++) if (c.Q[i] == g.Q[i]) same++;
                }
                o.WriteLine();
                o.WriteLine($"{GptqTypes.Name(options)} of {Path.GetFileName(Path.TrimEndingDirectorySeparator(gm))}, {parse.GetValue(samples)} x {parse.GetValue(seqLen)} calibration tokens");
                o.WriteLine($"{"side",-5} {"seconds",8} {"perplexity",11}");
                foreach (var (side, seconds, _, ppl) in results) o.WriteLine(string.Create(Inv, $"{side,-5} {seconds,8:F2} {ppl,11:F4}"));
                o.WriteLine(string.Create(Inv, $"speedup {results[0].Seconds / results[1].Seconds:F2}x, codes identical {100.0 * same / Math.Max(1, total):F3} % of {total:N0}"));
            }
            return 0;
        });
        return command;
    }

    private static string Hash(string path)
    {
        using var s = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(s));
    }
}
