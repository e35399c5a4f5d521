using System.Text;
using QuantServe.Engine.Formats.HuggingFace;
using QuantServe.Engine.Formats.Safetensors;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tokenization.HuggingFace;
using Xunit.Abstractions;

namespace QuantServe.Engine.Tests.Fuzzing;

/// <summary>
/// Mutation fuzzing of the Hugging Face JSON readers over prose-15m's real files: tokenizer.json (reduced to 1000
/// pieces, every section kept) with tokenizer_config.json, and config.json with generation_config.json, checked
/// against the real safetensors checkpoint. JSON value rewrites (types, boundary numbers, deep nesting, odd unicode,
/// removed and duplicated members) and byte damage; an accepted tokenizer must encode and decode.
/// </summary>
public class HfJsonFuzzTests(ITestOutputHelper output)
{
    [Fact]
    public void Read_MutatedTokenizerJson_ReadsOrRejectsCleanly() => TokenizerCases(FuzzSettings.Cases(900));

    [Fact]
    public void Load_MutatedConfigJson_LoadsOrRejectsCleanly() => ConfigCases(FuzzSettings.Cases(1200));

    [Fact, Trait("Category", "Slow")]
    public void Read_MutatedTokenizerJsonTenfold_ReadsOrRejectsCleanly() => TokenizerCases(FuzzSettings.Cases(900, 10));

    [Fact, Trait("Category", "Slow")]
    public void Load_MutatedConfigJsonTenfold_LoadsOrRejectsCleanly() => ConfigCases(FuzzSettings.Cases(1200, 10));

    /// <summary>Writes <paramref name="text"/> mutated as JSON (usually) and at the byte level (sometimes).</summary>
    internal static void WriteMutated(FuzzCase c, string name, string text, int jsonWeight = 3)
    {
        var bytes = Encoding.UTF8.GetBytes(c.Rng.Next(jsonWeight + 1) != 0 ? JsonMutator.Mutate(text, c.Rng, c.Log) : text);
        if (c.Rng.Next(jsonWeight + 1) == 0)
        {
            c.Log.Add($"{name} bytes:");
            bytes = c.Mutator().Mutate(bytes, bytes.Length, [], maxMutations: 2);
        }
        File.WriteAllBytes(c.Path(name), bytes);
    }

    private void TokenizerCases(int cases)
    {
        string tokenizer = HfFuzzCorpus.ReducedTokenizerJson;
        string config = HfFuzzCorpus.Text("tokenizer_config.json");
        new FuzzRun("tokenizer-json", output).Run(cases, c =>
        {
            bool both = c.Rng.Next(5) == 0;
            if (both || c.Rng.Next(5) != 0) WriteMutated(c, "tokenizer.json", tokenizer);
            else File.WriteAllText(c.Path("tokenizer.json"), tokenizer);
            if (both || !File.Exists(c.Path("tokenizer.json")) || c.Rng.Next(5) == 0) WriteMutated(c, "tokenizer_config.json", config);
            else File.WriteAllText(c.Path("tokenizer_config.json"), config);
            c.MustName = c.Dir;
            // A normalizer may legitimately replace each space by a long string, so what encoding the sample texts
            // allocates grows with the file; the bound stays proportional to it.
            c.AllocationLimit = (64L << 20) + 400 * new FileInfo(c.Path("tokenizer.json")).Length;
            return () =>
            {
                var files = HfTokenizerJson.Read(c.Dir);
                LoadedModelChecks.Tokenize(files.Tokenizer);
            };
        });
    }

    private void ConfigCases(int cases)
    {
        string config = HfFuzzCorpus.Text("config.json");
        string generation = HfFuzzCorpus.Text("generation_config.json");
        using var checkpoint = SafetensorsCheckpoint.Open(HfFuzzCorpus.Folder);
        new FuzzRun("config-json", output).Run(cases, c =>
        {
            if (c.Rng.Next(6) != 0) WriteMutated(c, "config.json", config);
            else File.WriteAllText(c.Path("config.json"), config);
            if (c.Rng.Next(4) == 0) WriteMutated(c, "generation_config.json", generation);
            else File.WriteAllText(c.Path("generation_config.json"), generation);
            c.MustName = c.Dir;
            // A config that disagrees with the (undamaged) checkpoint is reported against the tensor's shard.
            c.OrName = HfFuzzCorpus.Folder;
            return () =>
            {
                var hf = HuggingFaceConfig.Load(c.Dir);
                var model = hf.ToModelConfig();
                HuggingFaceTensorLayout.Check(checkpoint, hf);
                _ = HuggingFaceGenerationConfig.Load(c.Dir, hf.EosTokenIds);
                _ = hf.DisplayMetadata();
                Assert.True(model.QDim > 0 && model.KvDim > 0);
            };
        });
    }
}
