using static QuantServe.Api.Tests.TestSupport.CliRunner;
using QuantServe.Api.Cli;
using QuantServe.Api.Tests.TestSupport;
using QuantServe.Engine.Formats.Gguf;
using QuantServe.Engine.Tensors;

namespace QuantServe.Api.Tests.Cli;

public sealed class QuantizeCommandTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "quantserve-quantize-" + Guid.NewGuid().ToString("N"));

    public QuantizeCommandTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task Quantize_ProseToQ8_0WithTensorRule_WritesGgufAndPrintsSummary()
    {
        string source = SharedAssets.Path("models", "prose-15m-gguf", "prose-15m-f16.gguf");
        string target = Path.Combine(_dir, "out.gguf");
        var (exit, output, error) = await RunAsync("quantize", "--model", source, "--out", target, "--type", "q8_0",
            "--threads", "2", "--tensor-type", @"blk\.0\.attn_v=Q4_0", "--keep", "ffn_down", "--verbose");
        Assert.True(exit == 0, error);
        Assert.Contains("100%", error);
        Assert.Matches(@"Q8_0\s+48\s", output);
        Assert.Matches(@"F16\s+8\s", output);
        Assert.Matches(@"Q4_0\s+1\s", output);
        Assert.Matches(@"F32\s+17\s", output);
        Assert.Matches(@"blk\.0\.attn_v\.weight\s+256x128\s+F16\s+Q4_0\s+\d+\s+--tensor-type", output);
        Assert.Contains("bits per weight", output);
        Assert.Matches(@"time:\s+[0-9.]+ s", output);
        using var file = GgufFile.Open(target);
        Assert.Equal(GgmlType.Q4_0, file.Tensor("blk.0.attn_v.weight").Type);
        Assert.Equal(GgmlType.F16, file.Tensor("blk.3.ffn_down.weight").Type);
        Assert.Equal(7, file.Metadata.GetInteger("general.file_type"));
    }

    [Fact]
    public async Task Quantize_DeviceCpu_SaysWhereTheHeavyLoopsRun()
    {
        string source = SharedAssets.Path("models", "prose-15m-gguf", "prose-15m-f16.gguf");
        string target = Path.Combine(_dir, "cpu.gguf");
        var (exit, _, error) = await RunAsync("quantize", "--model", source, "--out", target, "--type", "q8_0", "--threads", "2", "--device", "cpu");
        Assert.True(exit == 0, error);
        Assert.Contains("quantize: heavy loops on the cpu (device=cpu)", error);
        Assert.True(File.Exists(target));
    }

    [Fact]
    public async Task Quantize_UnknownDevice_FailsNamingTheAcceptedFormsAndWritesNothing()
    {
        string source = SharedAssets.Path("models", "prose-15m-gguf", "prose-15m-f16.gguf");
        string target = Path.Combine(_dir, "bad.gguf");
        var (exit, _, error) = await RunAsync("quantize", "--model", source, "--out", target, "--type", "q8_0", "--device", "tpu:0");
        Assert.NotEqual(0, exit);
        Assert.Contains("auto, cpu, cuda, cuda:N", error);
        Assert.False(File.Exists(target));
    }

    [Fact]
    public async Task Quantize_Stories260KToAwqInt4G32_WritesAwqQuantizedFolderAndPrintsAlphas()
    {
        string target = Path.Combine(_dir, "stories-awq");
        var (exit, output, error) = await RunAsync("quantize", "--model", SharedAssets.Stories260K, "--out", target, "--type", "awq-int4-g32",
            "--calibration", SharedAssets.Path("eval", "stories260k-samples.txt"), "--samples", "8", "--seq-len", "128");
        Assert.True(exit == 0, error);
        Assert.Contains("100%", error);
        Assert.Contains("QuantServe quantized folder", output);
        Assert.Contains("calibration: 8 x 128 tokens from stories260k-samples.txt", output);
        Assert.Matches(@"ffn_down\s+[0-9.]+\s+[0-9.]+\s+[0-9.]+\s+[0-9.]+ %", output);
        Assert.Contains("35 (", output);
        using var model = QuantServe.Engine.Models.ModelLoader.Load(target);
        Assert.Equal("int4-g32-asym", model.Weights.Layers[2].Gate.Format.Name);
        Assert.Contains("\"method\": \"awq\"", File.ReadAllText(Path.Combine(target, "quantization_config.json")));
    }

    [Fact]
    public async Task Quantize_AwqWithoutCalibration_FailsWithMessage()
    {
        var (exit, _, error) = await RunAsync("quantize", "--model", SharedAssets.Stories260K, "--out", Path.Combine(_dir, "x"), "--type", "awq-int4-g128");
        Assert.NotEqual(0, exit);
        Assert.Contains("--calibration", error);
        Assert.False(Directory.Exists(Path.Combine(_dir, "x")));
    }

    [Fact]
    public async Task Quantize_Stories260KToInt4G32_WritesLoadableQuantizedFolder()
    {
        string target = Path.Combine(_dir, "stories-int4");
        var (exit, output, error) = await RunAsync("quantize", "--model", SharedAssets.Stories260K, "--out", target, "--type", "int4-g32", "--threads", "2");
        Assert.True(exit == 0, error);
        Assert.Contains("100%", error);
        Assert.Matches(@"int4-g32\s+35\s", output);
        Assert.Matches(@"int8\s+1\s", output);
        using var model = QuantServe.Engine.Models.ModelLoader.Load(target);
        Assert.Equal("quantserve", model.SourceFormat);
        Assert.Equal("int4-g32", model.Weights.Layers[4].Down.Format.Name);
    }

    [Fact]
    public async Task Quantize_RtnTypeWithImatrix_FailsAndWritesNothing()
    {
        var (exit, _, error) = await RunAsync("quantize", "--model", SharedAssets.Stories260K, "--out", Path.Combine(_dir, "q"), "--type", "nf4", "--imatrix", "x.dat");
        Assert.Equal(1, exit);
        Assert.Contains("GGUF types only", error);
        Assert.Empty(Directory.GetFileSystemEntries(_dir));
    }

    [Fact]
    public async Task Quantize_UnknownType_FailsListingValidTypesAndWritesNothing()
    {
        string target = Path.Combine(_dir, "out.gguf");
        var (exit, _, error) = await RunAsync("quantize", "--model", SharedAssets.Stories260K, "--out", target, "--type", "Q4_K_Z");
        Assert.Equal(1, exit);
        Assert.Contains("unknown quantization type 'Q4_K_Z'", error);
        Assert.Contains("Q4_K_M", error);
        Assert.Empty(Directory.GetFileSystemEntries(_dir));
    }

    [Fact]
    public async Task Quantize_MissingModel_ReportsTheModelError()
    {
        var (exit, _, error) = await RunAsync("quantize", "--model", Path.Combine(_dir, "nope.gguf"), "--out", Path.Combine(_dir, "o.gguf"), "--type", "Q8_0");
        Assert.Equal(2, exit);
        Assert.Contains("nope.gguf", error);
    }
}
