using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using QuantServe.Api.Hosting;
using QuantServe.Api.OpenAi;
using QuantServe.Api.Registry;
using QuantServe.Api.Tests.TestSupport;

namespace QuantServe.Api.Tests.Registry;

public sealed class ModelRegistryTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("quantserve-registry-").FullName;

    public ModelRegistryTests()
    {
        foreach (var name in new[] { "tiny-a", "tiny-b" })
        {
            Directory.CreateDirectory(Path.Combine(_dir, name));
            foreach (var f in new[] { "stories260K.bin", "tok512.bin" })
                File.Copy(Path.Combine(SharedAssets.Stories260K, f), Path.Combine(_dir, name, f));
        }
        File.WriteAllText(Path.Combine(_dir, "notes.txt"), "not a model");
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private ModelRegistry Create(long budget) => new(Options.Create(new QuantServeOptions
    {
        ModelsDirectory = _dir,
        ModelMemoryBudgetBytes = budget,
    }), NullLogger<ModelRegistry>.Instance);

    [Fact]
    public void List_ModelsDirectory_HasDefaultFirstThenModelsAndSkipsOtherFiles()
    {
        using var registry = Create(0);
        Assert.Equal(["stories260K", "tiny-a", "tiny-b"], registry.List().Select(e => e.Id));
        Assert.All(registry.List(), e => Assert.Null(e.Model));
    }

    [Fact]
    public async Task Acquire_BeyondBudget_UnloadsLeastRecentlyUsedIdleModel()
    {
        using var registry = Create(budget: 1_100_000 * 2); // room for two of these ~1.04 MB models
        using (await registry.AcquireAsync("stories260K", default)) { }
        using (await registry.AcquireAsync("tiny-a", default)) { }
        Assert.NotNull(registry.Find("tiny-a")!.Model);
        using (await registry.AcquireAsync("tiny-b", default)) { }
        // Default stays; tiny-a (least recently used, idle) made room for tiny-b.
        Assert.NotNull(registry.Find("stories260K")!.Model);
        Assert.Null(registry.Find("tiny-a")!.Model);
        Assert.NotNull(registry.Find("tiny-b")!.Model);
    }

    [Fact]
    public async Task Acquire_LeasedModelOverBudget_StaysLoadedUntilReleased()
    {
        using var registry = Create(budget: 1_100_000 * 2);
        using (await registry.AcquireAsync("stories260K", default)) { }
        var leaseA = await registry.AcquireAsync("tiny-a", default);
        using (await registry.AcquireAsync("tiny-b", default))
        {
            Assert.NotNull(registry.Find("tiny-a")!.Model); // in use: not unloaded
        }
        Assert.Null(registry.Find("tiny-b")!.Model);       // released and least recent
        leaseA.Dispose();
        Assert.NotNull(registry.Find("tiny-a")!.Model);
    }

    [Fact]
    public async Task Acquire_UnknownId_ThrowsModelNotFound()
    {
        using var registry = Create(0);
        var e = await Assert.ThrowsAsync<OpenAiException>(() => registry.AcquireAsync("missing", default));
        Assert.Equal(404, e.Status);
        Assert.Equal("model_not_found", e.Error.Code);
    }
}
