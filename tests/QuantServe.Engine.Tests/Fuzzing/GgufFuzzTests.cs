using QuantServe.Engine.Formats.Gguf;
using QuantServe.Engine.Models;
using Xunit.Abstractions;

namespace QuantServe.Engine.Tests.Fuzzing;

/// <summary>
/// Mutation fuzzing of the GGUF reader and model loader over real files: the stories260K weights and vocabulary
/// written by the engine's GgufWriter (small, so most cases), and llama.cpp's own Q2_K file of prose-15m (header
/// region mutated, data section kept). A mutant must load — tensors inside the file, a forward pass that runs — or
/// be refused with a <see cref="ModelLoadException"/> naming the file.
/// </summary>
public class GgufFuzzTests(ITestOutputHelper output)
{
    [Fact]
    public void Load_MutatedStoriesGguf_LoadsOrRejectsCleanly() => Stories(FuzzSettings.Cases(1200));

    [Fact]
    public void Load_MutatedLlamaCppQ2KGguf_LoadsOrRejectsCleanly() => Prose(FuzzSettings.Cases(150));

    [Fact, Trait("Category", "Slow")]
    public void Load_MutatedStoriesGgufTenfold_LoadsOrRejectsCleanly() => Stories(FuzzSettings.Cases(1200, 10));

    [Fact, Trait("Category", "Slow")]
    public void Load_MutatedLlamaCppQ2KGgufTenfold_LoadsOrRejectsCleanly() => Prose(FuzzSettings.Cases(150, 10));

    private void Stories(int cases)
    {
        var original = FuzzCorpus.StoriesGguf;
        var (fields, headerEnd) = GgufFieldMap.Walk(original);
        new FuzzRun("gguf-stories", output).Run(cases, c =>
        {
            var bytes = c.Mutator().Mutate(original, headerEnd + 256, fields);
            string path = c.Path("model.gguf");
            File.WriteAllBytes(path, bytes);
            c.MustName = path;
            return () => LoadAndRun(path);
        });
    }

    private void Prose(int cases)
    {
        var original = FuzzCorpus.ProseQ2K;
        var (fields, headerEnd) = GgufFieldMap.Walk(original);
        int region = (int)Math.Min(original.Length, headerEnd + 4096);
        var head = original[..region];
        new FuzzRun("gguf-q2k", output).Run(cases, c =>
        {
            var m = c.Mutator();
            var mutated = m.Mutate(head, headerEnd, fields);
            string path = c.Path("prose.gguf");
            using (var s = new FileStream(path, FileMode.CreateNew, FileAccess.Write))
            {
                s.Write(mutated);
                int tail = original.Length - region;
                if (c.Rng.Next(10) == 0)
                {
                    tail = c.Rng.Next(tail);
                    c.Log.Add($"data section cut to {tail} bytes");
                }
                s.Write(original, region, tail);
            }
            c.MustName = path;
            return () => LoadAndRun(path);
        });
    }

    internal static unsafe void LoadAndRun(string path)
    {
        var file = GgufFile.Open(path);
        LoadedModel model;
        byte* start = null;
        try
        {
            foreach (var t in file.Tensors)
            {
                Assert.True(t.Offset >= 0 && t.ByteSize >= 0 && t.Offset + t.ByteSize <= file.Length - file.DataOffset,
                    $"tensor {t.Name} [{t.Offset}, +{t.ByteSize}) escapes the data section");
                start = t.Data - file.DataOffset - t.Offset;
            }
            model = GgufModelLoader.Load(file);
        }
        catch
        {
            file.Dispose();
            throw;
        }
        using (model)
        {
            if (start != null) LoadedModelChecks.MatricesInside(model, start, file.Length);
            LoadedModelChecks.ForwardTiny(model);
        }
    }
}
