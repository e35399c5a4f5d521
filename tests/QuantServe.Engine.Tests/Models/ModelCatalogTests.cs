using QuantServe.Engine.Models;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Models;

public class ModelCatalogTests
{
    /// <summary>A models directory laid out as a server operator would: links to the real shared models plus clutter.</summary>
    private static TempModelFolder ModelsDirectory()
    {
        var dir = new TempModelFolder();
        Directory.CreateSymbolicLink(dir.Path("prose-15m"), SharedAssets.Prose15m);
        Directory.CreateSymbolicLink(dir.Path("stories260K"), SharedAssets.Stories260K);
        File.CreateSymbolicLink(dir.Path("prose-15m-q4.gguf"), Path.Combine(SharedAssets.Prose15mGguf, "prose-15m-Q4_0.gguf"));
        File.WriteAllText(dir.Path("README.md"), "notes");
        File.WriteAllText(dir.Path("fake.gguf"), "not a gguf");
        Directory.CreateDirectory(dir.Path("empty-folder"));
        Directory.CreateDirectory(dir.Path(".cache"));
        Directory.CreateDirectory(dir.Path("config-only"));
        File.WriteAllText(dir.Path("config-only/config.json"), "{}");
        return dir;
    }

    [Fact]
    public void Scan_MixedDirectory_FindsEachModelWithFormatAndSize()
    {
        using var dir = ModelsDirectory();
        var catalog = ModelCatalog.Scan(dir.Dir);

        Assert.Equal(["prose-15m", "prose-15m-q4", "stories260K"], catalog.Models.Select(m => m.Id));
        var hf = catalog.Find("prose-15m")!;
        Assert.Equal("safetensors", hf.Format);
        Assert.Equal(dir.Path("prose-15m"), hf.Path);
        long hfBytes = Directory.GetFiles(SharedAssets.Prose15m).Sum(f => new FileInfo(f).Length);
        Assert.Equal(hfBytes, hf.FileBytes);

        var gguf = catalog.Find("prose-15m-q4")!;
        Assert.Equal("gguf", gguf.Format);
        Assert.Equal(new FileInfo(Path.Combine(SharedAssets.Prose15mGguf, "prose-15m-Q4_0.gguf")).Length, gguf.FileBytes);

        var l2c = catalog.Find("stories260K")!;
        Assert.Equal("llama2c", l2c.Format);
        Assert.True(l2c.FileBytes > new FileInfo(Path.Combine(SharedAssets.Stories260K, "stories260K.bin")).Length);
    }

    [Fact]
    public void Scan_MixedDirectory_SkipsClutterWithReasons()
    {
        using var dir = ModelsDirectory();
        var skipped = ModelCatalog.Scan(dir.Dir).Skipped.ToDictionary(s => Path.GetFileName(s.Path), s => s.Reason);

        Assert.Equal([".cache", "README.md", "config-only", "empty-folder", "fake.gguf"], skipped.Keys.Order(StringComparer.Ordinal));
        Assert.Contains("GGUF magic", skipped["fake.gguf"]);
        Assert.Contains("not a .gguf file", skipped["README.md"]);
        Assert.Contains("hidden", skipped[".cache"]);
        Assert.Contains("neither a Hugging Face model", skipped["empty-folder"]);
        Assert.Contains("no model.safetensors", skipped["config-only"]);
    }

    [Fact]
    public void Scan_GgufFileAndFolderWithSameId_KeepsFirstAndSkipsSecond()
    {
        using var dir = new TempModelFolder();
        File.CreateSymbolicLink(dir.Path("prose.gguf"), Path.Combine(SharedAssets.Prose15mGguf, "prose-15m-Q8_0.gguf"));
        Directory.CreateSymbolicLink(dir.Path("prose"), SharedAssets.Prose15m);
        var catalog = ModelCatalog.Scan(dir.Dir);

        var model = Assert.Single(catalog.Models);
        Assert.Equal("safetensors", model.Format);
        var skip = Assert.Single(catalog.Skipped);
        Assert.Equal(dir.Path("prose.gguf"), skip.Path);
        Assert.Contains("already used", skip.Reason);
    }

    [Fact]
    public void Scan_FolderOfLinkedFiles_CountsTargetBytes()
    {
        // The Hugging Face cache's snapshot folders hold links to blobs.
        using var dir = new TempModelFolder();
        using var model = new TempModelFolder(SharedAssets.Prose15m);
        Directory.CreateSymbolicLink(dir.Path("prose"), model.Dir);
        long expected = Directory.GetFiles(SharedAssets.Prose15m).Sum(f => new FileInfo(f).Length);
        Assert.Equal(expected, Assert.Single(ModelCatalog.Scan(dir.Dir).Models).FileBytes);
    }

    [Fact]
    public void Scan_SharedModelsFolder_FindsHfAndLlama2cAndExplainsGgufFolder()
    {
        var catalog = ModelCatalog.Scan(SharedAssets.Path("models"));
        Assert.Equal(["prose-15m", "stories260K"], catalog.Models.Select(m => m.Id));
        var skip = Assert.Single(catalog.Skipped);
        Assert.Equal("prose-15m-gguf", Path.GetFileName(skip.Path));
        Assert.Contains(".gguf file(s)", skip.Reason);
    }

    [Fact]
    public void Scan_BrokenLink_SkipsIt()
    {
        using var dir = new TempModelFolder();
        File.CreateSymbolicLink(dir.Path("gone.gguf"), dir.Path("nowhere.gguf"));
        var catalog = ModelCatalog.Scan(dir.Dir);
        Assert.Empty(catalog.Models);
        Assert.Single(catalog.Skipped);
    }

    [Fact]
    public void Scan_MissingDirectory_ThrowsNamingIt()
    {
        string missing = Path.Combine(Path.GetTempPath(), "quantserve-no-such-" + Guid.NewGuid().ToString("N"));
        var e = Assert.Throws<ModelLoadException>(() => ModelCatalog.Scan(missing));
        Assert.Equal(missing, e.File);
    }

    [Theory]
    [InlineData("prose-15m", true)]
    [InlineData("Llama-2-7b.Q4_K_M", true)]
    [InlineData("", false)]
    [InlineData("a/b", false)]
    [InlineData("a\\b", false)]
    [InlineData("..", false)]
    [InlineData("x..y", false)]
    [InlineData(".hidden", false)]
    [InlineData(" padded", false)]
    [InlineData("tab\there", false)]
    public void IsValidId_Candidate_AcceptsOnlySafeNames(string id, bool valid)
    {
        Assert.Equal(valid, ModelCatalog.IsValidId(id, out var problem));
        Assert.Equal(valid, problem is null);
    }
}
