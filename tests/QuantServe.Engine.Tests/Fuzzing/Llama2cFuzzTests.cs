using QuantServe.Engine.Formats.Llama2c;
using QuantServe.Engine.Models;
using Xunit.Abstractions;

namespace QuantServe.Engine.Tests.Fuzzing;

/// <summary>
/// Mutation fuzzing of the llama2.c readers over stories260K: the checkpoint (its seven header ints rewritten with
/// boundary values, flips, truncation, insertion and deletion) loaded with its tokenizer and run, and the tok*.bin
/// tokenizer files (tok512 and the 32000-piece LLaMA vocabulary) read and used to encode and decode.
/// </summary>
public class Llama2cFuzzTests(ITestOutputHelper output)
{
    private static readonly FieldSpot[] Header =
    [
        new(0, 4, "dim"), new(4, 4, "hidden_dim"), new(8, 4, "n_layers"), new(12, 4, "n_heads"),
        new(16, 4, "n_kv_heads"), new(20, 4, "vocab_size"), new(24, 4, "seq_len"),
    ];

    [Fact]
    public void Load_MutatedStories260KCheckpoint_LoadsOrRejectsCleanly() => Checkpoint(FuzzSettings.Cases(400));

    [Fact]
    public void Read_MutatedLlama2cTokenizer_ReadsOrRejectsCleanly() => Tokenizer(FuzzSettings.Cases(600));

    [Fact, Trait("Category", "Slow")]
    public void Load_MutatedStories260KCheckpointTenfold_LoadsOrRejectsCleanly() => Checkpoint(FuzzSettings.Cases(400, 10));

    [Fact, Trait("Category", "Slow")]
    public void Read_MutatedLlama2cTokenizerTenfold_ReadsOrRejectsCleanly() => Tokenizer(FuzzSettings.Cases(600, 10));

    private void Checkpoint(int cases)
    {
        var original = File.ReadAllBytes(FuzzCorpus.StoriesCheckpoint);
        new FuzzRun("llama2c", output).Run(cases, c =>
        {
            var m = c.Mutator();
            var bytes = c.Rng.Next(2) == 0 ? m.RewriteInt32(original, Header[c.Rng.Next(Header.Length)]) : original;
            if (bytes == original || c.Rng.Next(3) == 0) bytes = m.Mutate(bytes, 28, Header);
            string path = c.Path("stories260K.bin");
            File.WriteAllBytes(path, bytes);
            File.CreateSymbolicLink(c.Path("tok512.bin"), FuzzCorpus.StoriesTokenizer);
            c.MustName = c.Dir;
            return () => LoadAndRun(path);
        });
    }

    private static unsafe void LoadAndRun(string path)
    {
        using var model = Llama2cModelLoader.Load(path);
        // The embedding is the first tensor, right after the 28-byte header.
        byte* start = model.Weights.TokenEmbedding.Data - 28;
        LoadedModelChecks.MatricesInside(model, start, new FileInfo(path).Length);
        LoadedModelChecks.ForwardTiny(model);
    }

    private void Tokenizer(int cases)
    {
        var small = File.ReadAllBytes(FuzzCorpus.StoriesTokenizer);
        var large = File.ReadAllBytes(Path.Combine(TestSupport.SharedAssets.Path("tokenizers"), "llama-32k.bin"));
        var smallFields = LengthFields(small, 512);
        var largeFields = LengthFields(large, 32000);
        new FuzzRun("llama2c-tok", output).Run(cases, c =>
        {
            bool big = c.Rng.Next(8) == 0;
            var (source, fields, vocab) = big ? (large, largeFields, 32000) : (small, smallFields, 512);
            int claimed = c.Rng.Next(6) switch { 0 => vocab + c.Rng.Next(-3, 4), 1 => c.Rng.Next(1, vocab), _ => vocab };
            c.Log.Add($"{(big ? "llama-32k" : "tok512")}, vocab_size {claimed}");
            var bytes = c.Mutator().Mutate(source, big ? 200_000 : source.Length, fields);
            string path = c.Path(big ? "tok32k.bin" : "tok512.bin");
            File.WriteAllBytes(path, bytes);
            c.MustName = path;
            return () => LoadedModelChecks.Tokenize(Llama2cTokenizerFile.Read(path, claimed));
        });
    }

    /// <summary>max_token_length and a spread sample of the per-token length and score fields.</summary>
    private static List<FieldSpot> LengthFields(byte[] f, int n)
    {
        var spots = new List<FieldSpot> { new(0, 4, "max_token_length") };
        int p = 4, step = Math.Max(1, n / 128);
        for (int i = 0; i < n; i++)
        {
            int len = BitConverter.ToInt32(f, p + 4);
            if (i % step == 0 || i < 4) { spots.Add(new(p + 4, 4, $"len[{i}]")); spots.Add(new(p, 4, $"score[{i}]")); }
            p += 8 + len;
        }
        return spots;
    }
}
