using System.Formats.Tar;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using QuantServe.Api.Quantization;
using QuantServe.Api.Tests.TestSupport;

namespace QuantServe.Api.Tests.Quantization;

/// <summary>group_size folds into the method's name; calibration_text gives GGUF presets an importance matrix.</summary>
public sealed class JobOptionsTests : IAsyncLifetime
{
    private readonly string _data = JobHost.NewDataDirectory();
    private JobHost _paused = null!;

    public Task InitializeAsync()
    {
        // A paused worker: submissions are validated and stored, never run.
        _paused = new JobHost(_data, new() { ["QuantServe:Jobs:Concurrency"] = "0" });
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _paused.DisposeAsync();
        JobHost.DeleteDirectory(_data);
    }

    [Theory]
    [InlineData("int4", 64, "int4-g64")]
    [InlineData("int4-asym", 32, "int4-g32-asym")]
    [InlineData("int4-g128", 128, "int4-g128")]
    [InlineData("INT8", 128, "INT8-g128")]
    [InlineData("gptq-int4", 64, "gptq-int4-g64")]
    [InlineData("gptq-int4-g128-act", 128, "gptq-int4-g128-act")]
    [InlineData("awq-int3", 128, "awq-int3-g128")]
    [InlineData("int4", null, "int4")]
    public void WithGroupSize_IntegerNames_GroupInsertedAfterBits(string method, int? group, string expected)
    {
        Assert.Equal(expected, QuantizationMethods.WithGroupSize(method, group, out var problem));
        Assert.Null(problem);
    }

    [Theory]
    [InlineData("int4-g32", 64, "names group size 32")]
    [InlineData("gptq-int4-g128", 64, "names group size 128")]
    [InlineData("Q4_K_M", 32, "fixed block sizes")]
    [InlineData("q8_0", 32, "fixed block sizes")]
    [InlineData("nf4", 64, "fixed layout")]
    [InlineData("int8-pt", 64, "per-tensor")]
    [InlineData("int4", 0, "out of range")]
    [InlineData("int4", -32, "out of range")]
    public void WithGroupSize_Conflicts_Problem(string method, int group, string expected)
    {
        Assert.Null(QuantizationMethods.WithGroupSize(method, group, out var problem));
        Assert.Contains(expected, problem);
    }

    [Theory]
    [InlineData("int4", 64, "int4-g64")]
    [InlineData("int3-asym", 64, "int3-g64-asym")]
    [InlineData("int4-g32", 32, "int4-g32")]
    public async Task Submit_GroupSize_JobMethodCarriesIt(string method, int group, string expected)
    {
        string id = await _paused.SubmitAsync(new { model = "stories260K", method, group_size = group });
        var job = await _paused.GetAsync(id);
        Assert.Equal(expected, (string?)job["method"]);
    }

    [Fact]
    public async Task Submit_CalibrationTextWithPreset_Accepted()
    {
        string id = await _paused.SubmitAsync(new { model = "prose-15m-f16", method = "Q4_K_M", calibration_text = "Once upon a time there was a cat." });
        Assert.Equal("Q4_K_M", (string?)(await _paused.GetAsync(id))["method"]);
    }

    [Theory]
    [InlineData("int4-g32", 64, null)]
    [InlineData("Q4_K_M", 32, null)]
    [InlineData("nf4", 64, null)]
    [InlineData("int8", null, "some calibration text")]
    public async Task Submit_ConflictingOptions_400AndNoJob(string method, int? group, string? calibration)
    {
        var r = await _paused.Client.PostAsJsonAsync("/quantize", new { model = "stories260K", method, group_size = group, calibration_text = calibration });
        string text = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == HttpStatusCode.BadRequest, text);
        Assert.Equal("application/problem+json", r.Content.Headers.ContentType?.MediaType);
        Assert.Equal(0, (long)JsonNode.Parse(await _paused.Client.GetStringAsync("/quantize"))!["total"]!);
    }

    [Fact]
    public async Task Upload_GroupSizeField_JobMethodCarriesIt()
    {
        var ms = new MemoryStream();
        using (var tar = new TarWriter(ms, TarEntryFormat.Pax, leaveOpen: true))
            foreach (var f in new[] { "stories260K.bin", "tok512.bin" })
                tar.WriteEntry(Path.Combine(SharedAssets.Stories260K, f), f);
        var file = new ByteArrayContent(ms.ToArray());
        file.Headers.ContentType = new MediaTypeHeaderValue("application/x-tar");
        var form = new MultipartFormDataContent { { new StringContent("int4"), "method" }, { new StringContent("64"), "group_size" }, { file, "file", "tiny.tar" } };
        var r = await _paused.Client.PostAsync("/quantize", form);
        string text = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == HttpStatusCode.Accepted, text);
        var job = await _paused.GetAsync((string)JsonNode.Parse(text)!["id"]!);
        Assert.Equal("int4-g64", (string?)job["method"]);
        Assert.Equal("tiny", (string?)job["model"]);
    }

    [Fact]
    public void Compute_CalibrationText_ImatrixOverEveryLayerMatrix()
    {
        using var model = QuantServe.Engine.Models.ModelLoader.Load(SharedAssets.Stories260K);
        string text = File.ReadAllText(SharedAssets.Path("eval", "stories260k-samples.txt"))[..1200];
        double last = 0;
        var (matrix, summary) = JobCalibration.Compute(model, text, f => last = f, CancellationToken.None);
        Assert.Equal(1.0, last, 6);
        Assert.Equal(model.Config.Layers * 7, summary.Tensors);
        Assert.True(summary.Windows >= 1 && summary.TokensPerWindow >= 2, summary.ToString());
        var q = matrix.Find("blk.0.attn_q.weight");
        Assert.NotNull(q);
        Assert.Equal(model.Config.Dim, q.Length);
        Assert.All(q, w => Assert.True(w > 0 && float.IsFinite(w)));
        Assert.Contains(q, w => w != 1f); // measured, not the default weight of unreached columns
    }

    [Fact]
    public void Compute_TextOfOneToken_Throws()
    {
        using var model = QuantServe.Engine.Models.ModelLoader.Load(SharedAssets.Stories260K);
        var e = Assert.Throws<InvalidOperationException>(() => JobCalibration.Compute(model, "", _ => { }, CancellationToken.None));
        Assert.Contains("calibration_text", e.Message);
    }

    // Two Q4_K_M jobs on prose-15m: about 20-50 s on the shared 2-core machine.
    [Fact]
    [Trait("Category", "Slow")]
    public async Task Run_CalibrationTextWithKQuantPreset_UsesImatrixAndChangesResult()
    {
        string data = JobHost.NewDataDirectory();
        try
        {
            await using var host = new JobHost(data);
            string calibration = File.ReadAllText(SharedAssets.Path("eval", "fortunes.txt"))[..2000];

            var (plain, _) = await host.WaitAsync(await host.SubmitAsync(new { model = "prose-15m-f16", method = "Q4_K_M", context = 32, eval_tokens = 64 }));
            Assert.True((string?)plain["status"] == "succeeded", plain.ToJsonString());
            string output = Path.Combine(data, "models", (string)plain["result"]!["model_id"]! + ".gguf");
            byte[] plainHash = SHA256.HashData(File.ReadAllBytes(output));

            var (calibrated, _) = await host.WaitAsync(await host.SubmitAsync(new
            {
                model = "prose-15m-f16", method = "Q4_K_M", context = 32, eval_tokens = 64, calibration_text = calibration,
            }));
            Assert.True((string?)calibrated["status"] == "succeeded", calibrated.ToJsonString());
            byte[] calibratedHash = SHA256.HashData(File.ReadAllBytes(output));

            Assert.Null(plain["result"]!["report"]!["imatrix"]);
            var imatrix = calibrated["result"]!["report"]!["imatrix"]!;
            Assert.Equal("calibration_text", (string?)imatrix["source"]);
            Assert.True((int)imatrix["windows"]! >= 1);
            Assert.Equal(8 * 7, (int)imatrix["tensors"]!); // prose-15m: 8 layers × q, k, v, output, gate, up, down
            Assert.NotEqual(plainHash, calibratedHash);
            Assert.NotEqual((double)plain["result"]!["report"]!["kld_mean"]!, (double)calibrated["result"]!["report"]!["kld_mean"]!);
        }
        finally { JobHost.DeleteDirectory(data); }
    }
}
