using static QuantServe.Api.Tests.TestSupport.CliRunner;
using QuantServe.Api.Cli;
using QuantServe.Api.Tests.TestSupport;
using QuantServe.Engine.Formats.Gguf;
using QuantServe.Engine.Quantization.Gguf;
using QuantServe.Engine.Tensors;

namespace QuantServe.Api.Tests.Cli;

public sealed class ImatrixCommandTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "quantserve-imatrix-" + Guid.NewGuid().ToString("N"));

    public ImatrixCommandTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task Imatrix_ProseOnBible_WritesDatThatQuantizeUses()
    {
        string model = SharedAssets.Path("models", "prose-15m-gguf", "prose-15m-f16.gguf");
        string dat = Path.Combine(_dir, "prose.dat");
        var (exit, output, error) = await RunAsync("imatrix", "--model", model, "--calibration", SharedAssets.Path("eval", "bible.txt"),
            "--out", dat, "--samples", "2", "--seq-len", "64");
        Assert.True(exit == 0, error);
        Assert.Contains("100%", error);
        Assert.Contains("2 windows x 64 tokens", output);
        Assert.Contains("56 tensors", output);
        var im = ImportanceMatrix.Load(dat);
        Assert.Equal(56, im.Count);
        Assert.Equal(768, im.Find("blk.7.ffn_down.weight")!.Length);

        string q = Path.Combine(_dir, "q.gguf");
        var (qexit, _, qerror) = await RunAsync("quantize", "--model", model, "--out", q, "--type", "Q4_K_M", "--imatrix", dat,
            "--tensor-type", "token_embd=F16");
        Assert.True(qexit == 0, qerror);
        using var file = GgufFile.Open(q);
        Assert.Equal(GgmlType.Q4_K, file.Tensor("blk.0.attn_q.weight").Type);
    }

    [Fact]
    public async Task Imatrix_MissingCalibrationFile_ReportsModelErrorExit2()
    {
        var (exit, _, error) = await RunAsync("imatrix", "--model", SharedAssets.Stories260K,
            "--calibration", Path.Combine(_dir, "none.txt"), "--out", Path.Combine(_dir, "x.dat"));
        Assert.Equal(2, exit);
        Assert.Contains("no such calibration file", error);
        Assert.Empty(Directory.GetFileSystemEntries(_dir));
    }
}
