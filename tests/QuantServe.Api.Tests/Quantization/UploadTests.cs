using System.Formats.Tar;
using System.IO.Compression;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;

namespace QuantServe.Api.Tests.Quantization;

public sealed class UploadTests : IAsyncLifetime
{
    private readonly string _data = JobHost.NewDataDirectory();
    private JobHost _host = null!;

    public Task InitializeAsync()
    {
        _host = new JobHost(_data, new() { ["QuantServe:Uploads:MaxBytes"] = (40L << 20).ToString() });
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _host.DisposeAsync();
        JobHost.DeleteDirectory(_data);
    }

    private static MultipartFormDataContent Form(HttpContent file, string fileName, string method = "Q8_0")
    {
        var form = new MultipartFormDataContent
        {
            { new StringContent(method), "method" },
            { new StringContent("32"), "context" },
            { new StringContent("64"), "eval_tokens" },
        };
        file.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        form.Add(file, "file", fileName);
        return form;
    }

    private string[] LeftoverUploads()
    {
        string dir = Path.Combine(_data, "uploads");
        return Directory.Exists(dir) ? Directory.GetFileSystemEntries(dir, "*", SearchOption.AllDirectories) : [];
    }

    private async Task<JsonNode> AssertRejectedAsync(MultipartFormDataContent form, HttpStatusCode status)
    {
        var r = await _host.Client.PostAsync("/quantize", form);
        string text = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == status, $"{r.StatusCode}: {text}");
        Assert.Equal("application/problem+json", r.Content.Headers.ContentType?.MediaType);
        Assert.Empty(LeftoverUploads());
        var list = JsonNode.Parse(await _host.Client.GetStringAsync("/quantize"))!;
        Assert.Equal(0, (long)list["total"]!);
        return JsonNode.Parse(text)!;
    }

    [Fact]
    public async Task Upload_ProseF16Gguf_QuantizedToQ8_0()
    {
        await using var file = File.OpenRead(Path.Combine(JobHost.ProseGgufDir, "prose-15m-f16.gguf"));
        var r = await _host.Client.PostAsync("/quantize", Form(new StreamContent(file), "uploaded-prose.gguf"));
        string text = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == HttpStatusCode.Accepted, text);
        string id = (string)JsonNode.Parse(text)!["id"]!;
        var (job, _) = await _host.WaitAsync(id);
        Assert.True((string?)job["status"] == "succeeded", job.ToJsonString());
        Assert.Equal("uploaded-prose", (string?)job["model"]);
        Assert.Equal("uploaded-prose:q8_0", (string?)job["result"]!["model_id"]);
        Assert.InRange((double)job["result"]!["report"]!["perplexity_ratio"]!, 0.98, 1.02);
        Assert.True(File.Exists(Path.Combine(_data, "models", "uploaded-prose:q8_0.gguf")));
        Assert.Empty(LeftoverUploads()); // the source upload goes once the job is final
    }

    [Fact]
    public async Task Upload_GarbageGguf_RejectedAndRemoved()
    {
        var problem = await AssertRejectedAsync(Form(new ByteArrayContent(new byte[4096]), "junk.gguf"), HttpStatusCode.BadRequest);
        Assert.Contains("junk.gguf", (string?)problem["detail"]);
    }

    [Fact]
    public async Task Upload_OverLimit_413AndRemoved()
    {
        await using var limited = new JobHost(_data, new() { ["QuantServe:Uploads:MaxBytes"] = "100000" });
        var r = await limited.Client.PostAsync("/quantize", Form(new ByteArrayContent(new byte[300_000]), "big.gguf"));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, r.StatusCode);
        Assert.Equal("application/problem+json", r.Content.Headers.ContentType?.MediaType);
        Assert.Empty(LeftoverUploads());
    }

    [Fact]
    public async Task Upload_ZipWithTraversal_Rejected()
    {
        var ms = new MemoryStream();
        using (var zip = new ZipArchive(ms, ZipArchiveMode.Create, leaveOpen: true))
        {
            using var w = new StreamWriter(zip.CreateEntry("../escape.txt").Open());
            w.Write("x");
        }
        var problem = await AssertRejectedAsync(Form(new ByteArrayContent(ms.ToArray()), "model.zip"), HttpStatusCode.BadRequest);
        Assert.Contains("leaves the archive", (string?)problem["detail"]);
        Assert.False(File.Exists(Path.Combine(_data, "uploads", "escape.txt")));
    }

    [Fact]
    public async Task Upload_TarWithSymlink_Rejected()
    {
        var ms = new MemoryStream();
        using (var tar = new TarWriter(ms, TarEntryFormat.Pax, leaveOpen: true))
            tar.WriteEntry(new PaxTarEntry(TarEntryType.SymbolicLink, "config.json") { LinkName = "/etc/passwd" });
        var problem = await AssertRejectedAsync(Form(new ByteArrayContent(ms.ToArray()), "model.tar"), HttpStatusCode.BadRequest);
        Assert.Contains("link", (string?)problem["detail"]);
    }

    [Fact]
    public async Task Upload_UnknownMethod_RejectedAndRemoved()
    {
        await AssertRejectedAsync(Form(new ByteArrayContent(new byte[64]), "x.gguf", method: "int3"), HttpStatusCode.BadRequest);
    }
}
