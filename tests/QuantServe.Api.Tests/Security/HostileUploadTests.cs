using System.Buffers.Binary;
using System.Formats.Tar;
using System.IO.Compression;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using QuantServe.Api.Tests.Quantization;

namespace QuantServe.Api.Tests.Security;

/// <summary>Real hostile zip and tar files posted to POST /quantize: each is refused before a job exists, in
/// ProblemDetails, and leaves nothing behind, inside the data directory or outside it.</summary>
public sealed class HostileUploadTests : IAsyncLifetime
{
    private const int MaxEntries = 20;
    private const long MaxExpanded = 8 << 20;
    private readonly string _data = JobHost.NewDataDirectory();
    private JobHost _host = null!;

    public Task InitializeAsync()
    {
        _host = new JobHost(_data, new()
        {
            ["QuantServe:Uploads:MaxArchiveEntries"] = MaxEntries.ToString(),
            ["QuantServe:Uploads:MaxExpandedBytes"] = MaxExpanded.ToString(),
        });
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _host.DisposeAsync();
        JobHost.DeleteDirectory(_data);
    }

    private async Task<string> RejectAsync(byte[] archive, string fileName, params HttpStatusCode[] statuses)
    {
        var file = new ByteArrayContent(archive);
        file.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        var form = new MultipartFormDataContent { { new StringContent("int8"), "method" }, { file, "file", fileName } };
        var r = await _host.Client.PostAsync("/quantize", form);
        string text = await r.Content.ReadAsStringAsync();
        Assert.True(statuses.Contains(r.StatusCode), $"{(int)r.StatusCode}: {text}");
        Assert.Equal("application/problem+json", r.Content.Headers.ContentType?.MediaType);
        string uploads = Path.Combine(_data, "uploads");
        Assert.True(!Directory.Exists(uploads) || Directory.GetFileSystemEntries(uploads, "*", SearchOption.AllDirectories).Length == 0,
            "the rejected upload left files behind");
        Assert.Equal(0, (long)JsonNode.Parse(await _host.Client.GetStringAsync("/quantize"))!["total"]!);
        return (string)JsonNode.Parse(text)!["detail"]!;
    }

    private static byte[] Zip(Action<ZipArchive> build)
    {
        var ms = new MemoryStream();
        using (var zip = new ZipArchive(ms, ZipArchiveMode.Create, leaveOpen: true)) build(zip);
        return ms.ToArray();
    }

    private static void Add(ZipArchive zip, string name, byte[] data, CompressionLevel level = CompressionLevel.Optimal)
    {
        using var s = zip.CreateEntry(name, level).Open();
        s.Write(data);
    }

    private static byte[] Tar(params TarEntry[] entries)
    {
        var ms = new MemoryStream();
        using (var tar = new TarWriter(ms, TarEntryFormat.Pax, leaveOpen: true))
            foreach (var e in entries) tar.WriteEntry(e);
        return ms.ToArray();
    }

    private static PaxTarEntry TarFile(string name, byte[] data) => new(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(data) };

    [Theory]
    [InlineData("/tmp/quantserve-escape.txt", "absolute path")]
    [InlineData("C:/escape.txt", "absolute path")]
    [InlineData("model/../../escape.txt", "leaves the archive")]
    [InlineData("..\\escape.txt", "leaves the archive")]
    [InlineData("model/\u0001config.json", "control character")]
    public async Task Zip_EntryNameOutsideFolder_Rejected(string entry, string reason)
    {
        string detail = await RejectAsync(Zip(z => Add(z, entry, "x"u8.ToArray())), "model.zip", HttpStatusCode.BadRequest);
        Assert.Contains(reason, detail);
        Assert.False(File.Exists("/tmp/quantserve-escape.txt"));
        Assert.False(File.Exists(Path.Combine(_data, "escape.txt")));
    }

    [Fact]
    public async Task Zip_SymlinkEntry_Rejected()
    {
        byte[] zip = Zip(z =>
        {
            var e = z.CreateEntry("config.json");
            e.ExternalAttributes = (0xA000 | 0x1FF) << 16; // S_IFLNK | 0777, as `zip --symlinks` writes
            using var s = e.Open();
            s.Write("/etc/passwd"u8);
        });
        Assert.Contains("symbolic link", await RejectAsync(zip, "model.zip", HttpStatusCode.BadRequest));
    }

    [Fact]
    public async Task Zip_TooManyEntries_Rejected()
    {
        byte[] zip = Zip(z => { for (int i = 0; i <= MaxEntries; i++) Add(z, $"f{i}.txt", [1]); });
        Assert.Contains($"at most {MaxEntries}", await RejectAsync(zip, "model.zip", HttpStatusCode.BadRequest));
    }

    [Fact]
    public async Task Zip_Bomb_RejectedAsTooLarge()
    {
        // 64 MiB of zeros deflates to about 64 KiB: a thousandfold expansion.
        byte[] zip = Zip(z => Add(z, "model.safetensors", new byte[64 << 20], CompressionLevel.SmallestSize));
        Assert.True(zip.Length < 1 << 20);
        Assert.Contains("expands to more than", await RejectAsync(zip, "model.zip", HttpStatusCode.RequestEntityTooLarge));
    }

    [Fact]
    public async Task Zip_BombUnderstatingItsSize_Rejected()
    {
        // The same bomb with both size fields (local header and central directory) rewritten to claim 1 KiB: the declared
        // total passes the check, so only counting the bytes actually inflated can stop it.
        byte[] zip = Zip(z => Add(z, "model.safetensors", new byte[64 << 20], CompressionLevel.SmallestSize));
        for (int i = 0; i + 4 <= zip.Length; i++)
        {
            uint sig = BinaryPrimitives.ReadUInt32LittleEndian(zip.AsSpan(i));
            if (sig == 0x04034b50) BinaryPrimitives.WriteUInt32LittleEndian(zip.AsSpan(i + 22), 1024);
            else if (sig == 0x02014b50) BinaryPrimitives.WriteUInt32LittleEndian(zip.AsSpan(i + 24), 1024);
        }
        await RejectAsync(zip, "model.zip", HttpStatusCode.BadRequest, HttpStatusCode.RequestEntityTooLarge);
    }

    [Theory]
    [InlineData("/tmp/quantserve-escape.txt", "absolute path")]
    [InlineData("a/../../quantserve-escape.txt", "leaves the archive")]
    public async Task Tar_EntryNameOutsideFolder_Rejected(string entry, string reason)
    {
        Assert.Contains(reason, await RejectAsync(Tar(TarFile(entry, "x"u8.ToArray())), "model.tar", HttpStatusCode.BadRequest));
        Assert.False(File.Exists("/tmp/quantserve-escape.txt"));
    }

    [Theory]
    [InlineData(TarEntryType.SymbolicLink, "link")]
    [InlineData(TarEntryType.HardLink, "link")]
    [InlineData(TarEntryType.CharacterDevice, "not a regular file")]
    [InlineData(TarEntryType.Fifo, "not a regular file")]
    public async Task Tar_SpecialEntry_Rejected(TarEntryType type, string reason)
    {
        var entry = new PaxTarEntry(type, "config.json");
        if (type is TarEntryType.SymbolicLink or TarEntryType.HardLink) entry.LinkName = "/etc/passwd";
        Assert.Contains(reason, await RejectAsync(Tar(entry), "model.tar", HttpStatusCode.BadRequest));
    }

    [Fact]
    public async Task Tar_TooManyEntries_Rejected()
    {
        var entries = Enumerable.Range(0, MaxEntries + 1).Select(i => (TarEntry)TarFile($"f{i}.txt", [1])).ToArray();
        Assert.Contains($"more than {MaxEntries}", await RejectAsync(Tar(entries), "model.tar", HttpStatusCode.BadRequest));
    }

    [Fact]
    public async Task Tar_ExpandedOverLimit_Rejected()
    {
        byte[] tar = Tar(TarFile("a.bin", new byte[5 << 20]), TarFile("b.bin", new byte[5 << 20]));
        Assert.Contains("expands to more than", await RejectAsync(tar, "model.tar", HttpStatusCode.RequestEntityTooLarge));
    }

    [Theory]
    [InlineData("../../etc/passwd")]
    [InlineData("/etc/passwd")]
    [InlineData("stories260K/../prose-15m-f16")]
    public async Task Quantize_ModelIdWithPathCharacters_NotFound(string id)
    {
        var r = await _host.Client.PostAsync("/quantize", JsonContent.Create(new { model = id, method = "Q8_0" }));
        Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
        Assert.Equal("application/problem+json", r.Content.Headers.ContentType?.MediaType);
        var vram = await _host.Client.GetAsync($"/models/{Uri.EscapeDataString(id)}/vram");
        Assert.Equal(HttpStatusCode.NotFound, vram.StatusCode);
    }
}
