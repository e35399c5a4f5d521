using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using QuantServe.Api.Hosting;
using QuantServe.Api.Registry;
using QuantServe.Api.Security;
using QuantServe.Api.Tests.TestSupport;

namespace QuantServe.Api.Tests.Security;

public sealed class ModelLinkTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("quantserve-links-").FullName;

    public ModelLinkTests()
    {
        string prose = Path.Combine(SharedAssets.Path("models", "prose-15m-gguf"), "prose-15m-Q8_0.gguf");
        // Out of the models directory: a linked file, a linked folder, and a real folder whose files link out.
        File.CreateSymbolicLink(Path.Combine(_dir, "linked-file.gguf"), prose);
        Directory.CreateSymbolicLink(Path.Combine(_dir, "linked-folder"), SharedAssets.Stories260K);
        Directory.CreateDirectory(Path.Combine(_dir, "folder-of-links"));
        foreach (var f in new[] { "stories260K.bin", "tok512.bin" })
            File.CreateSymbolicLink(Path.Combine(_dir, "folder-of-links", f), Path.Combine(SharedAssets.Stories260K, f));
        // Inside it: a real copy in a hidden store, served through a link.
        Directory.CreateDirectory(Path.Combine(_dir, ".store"));
        File.Copy(prose, Path.Combine(_dir, ".store", "prose.gguf"));
        File.CreateSymbolicLink(Path.Combine(_dir, "linked-inside.gguf"), Path.Combine(_dir, ".store", "prose.gguf"));
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private ModelRegistry Create(bool allow) => new(Options.Create(new QuantServeOptions
    {
        ModelsDirectory = _dir,
        AllowLinksOutsideModelsDirectory = allow,
    }), NullLogger<ModelRegistry>.Instance);

    [Fact]
    public void List_LinksOutOfModelsDirectory_Ignored()
    {
        using var registry = Create(allow: false);
        Assert.Equal(["stories260K", "linked-inside"], registry.List().Select(e => e.Id));
        Assert.Null(registry.Find("linked-file"));
    }

    [Fact]
    public void List_LinksAllowedByConfiguration_Served()
    {
        using var registry = Create(allow: true);
        Assert.Equal(["stories260K", "folder-of-links", "linked-file", "linked-folder", "linked-inside"], registry.List().Select(e => e.Id));
    }

    [Fact]
    public void RealPath_LinkedDirectoryInTheMiddle_Resolved()
    {
        string viaLink = Path.Combine(_dir, "linked-folder", "tok512.bin");
        Assert.Equal(Path.Combine(PathGuard.RealPath(SharedAssets.Stories260K), "tok512.bin"), PathGuard.RealPath(viaLink));
        Assert.Equal(Path.Combine(_dir, "linked-folder"), PathGuard.LinkOutside(_dir, Path.Combine(_dir, "linked-folder")));
        Assert.StartsWith(Path.Combine(_dir, "folder-of-links") + "/", PathGuard.LinkOutside(_dir, Path.Combine(_dir, "folder-of-links")));
        Assert.Null(PathGuard.LinkOutside(_dir, Path.Combine(_dir, "linked-inside.gguf")));
    }
}
