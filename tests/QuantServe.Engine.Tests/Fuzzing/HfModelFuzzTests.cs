using System.Buffers.Binary;
using System.Text;
using QuantServe.Engine.Formats.HuggingFace;
using QuantServe.Engine.Formats.Safetensors;
using Xunit.Abstractions;

namespace QuantServe.Engine.Tests.Fuzzing;

/// <summary>
/// End-to-end fuzzing of the Hugging Face folder loader on prose-15m: one file of the folder is damaged (config.json,
/// generation_config.json, tokenizer_config.json, the reduced tokenizer.json, the shard index or the smallest shard's
/// header) and the whole model is loaded; an accepted model must run a forward pass.
/// </summary>
public class HfModelFuzzTests(ITestOutputHelper output)
{
    private static readonly string[] JsonFiles =
        ["config.json", "generation_config.json", "tokenizer_config.json", "tokenizer.json", SafetensorsCheckpoint.IndexFileName];

    [Fact]
    public void Load_FolderWithOneMutatedFile_LoadsOrRejectsCleanly() => Run(FuzzSettings.Cases(120));

    [Fact, Trait("Category", "Slow")]
    public void Load_FolderWithOneMutatedFileTenfold_LoadsOrRejectsCleanly() => Run(FuzzSettings.Cases(120, 10));

    private void Run(int cases)
    {
        string tokenizer = HfFuzzCorpus.ReducedTokenizerJson;
        const string smallShard = "model-00003-of-00003.safetensors";
        var shard = File.ReadAllBytes(Path.Combine(HfFuzzCorpus.Folder, smallShard));
        int headerLength = (int)BinaryPrimitives.ReadUInt64LittleEndian(shard);
        string header = Encoding.UTF8.GetString(shard, 8, headerLength);
        new FuzzRun("hf-folder", output).Run(cases, c =>
        {
            foreach (var f in Directory.EnumerateFiles(HfFuzzCorpus.Folder))
                if (Path.GetFileName(f) is var name && name != "tokenizer.json" && name != "reference.json")
                    File.CreateSymbolicLink(c.Path(name), f);
            File.WriteAllText(c.Path("tokenizer.json"), tokenizer);
            int pick = c.Rng.Next(JsonFiles.Length + 1);
            if (pick < JsonFiles.Length)
            {
                string name = JsonFiles[pick];
                string text = File.ReadAllText(c.Path(name));
                File.Delete(c.Path(name));
                c.Log.Add(name + ":");
                HfJsonFuzzTests.WriteMutated(c, name, text);
            }
            else
            {
                c.Log.Add(smallShard + " header:");
                var json = Encoding.UTF8.GetBytes(JsonMutator.Mutate(header, c.Rng, c.Log));
                var bytes = new byte[8 + json.Length + shard.Length - 8 - headerLength];
                BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)json.Length);
                json.CopyTo(bytes, 8);
                shard.AsSpan(8 + headerLength).CopyTo(bytes.AsSpan(8 + json.Length));
                File.Delete(c.Path(smallShard));
                File.WriteAllBytes(c.Path(smallShard), bytes);
            }
            c.MustName = c.Dir;
            return () =>
            {
                using var model = HuggingFaceModelLoader.Load(c.Dir);
                LoadedModelChecks.ForwardTiny(model);
            };
        });
    }
}
