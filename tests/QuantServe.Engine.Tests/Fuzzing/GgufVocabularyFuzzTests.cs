using System.Text;
using FsCheck;
using FsCheck.Fluent;
using QuantServe.Engine.Formats.Gguf;
using QuantServe.Engine.Tokenization;
using Xunit.Abstractions;

namespace QuantServe.Engine.Tests.Fuzzing;

/// <summary>
/// FsCheck-generated <c>tokenizer.ggml.*</c> metadata (SentencePiece "llama" and byte-level "gpt2" vocabularies: tokens
/// drawn from tok512's real pieces, byte pieces, specials and odd strings; scores and token types of right or wrong
/// length and type; merges well- or ill-formed; boundary special-token ids of every integer type) written by the
/// engine's GgufWriter, sometimes damaged at the byte level, then read into a tokenizer that must encode and decode.
/// </summary>
public class GgufVocabularyFuzzTests(ITestOutputHelper output)
{
    private sealed record Vocabulary(string Model, GgufValue Tokens, GgufValue? Scores, GgufValue? Types, GgufValue? Merges,
        string? Pre, (string Key, GgufValue Value)[] Ids, GgufValue? AddBos)
    {
        public override string ToString() =>
            $"model={Model} tokens={Tokens} scores={Scores} types={Types} merges={Merges} pre={Pre} ids=[{string.Join(", ", Ids.Select(i => $"{i.Key}={i.Value}"))}] add_bos={AddBos}";
    }

    [Fact]
    public void CreateTokenizer_GeneratedVocabularyMetadata_BuildsOrRejectsCleanly() => Run(FuzzSettings.Cases(700));

    [Fact, Trait("Category", "Slow")]
    public void CreateTokenizer_GeneratedVocabularyMetadataTenfold_BuildsOrRejectsCleanly() => Run(FuzzSettings.Cases(700, 10));

    private void Run(int cases)
    {
        var (realPieces, _) = FuzzCorpus.ReadLlama2cVocab(File.ReadAllBytes(FuzzCorpus.StoriesTokenizer), 512);
        var piece = Gen.Frequency(
            (6, Gen.Elements(realPieces).Select(p => p.Replace(' ', '\u2581'))),
            (2, Gen.Choose(0, 255).Select(b => $"<0x{b:X2}>")),
            (2, Gen.Elements("<s>", "</s>", "<unk>", "<|endoftext|>", "<|eot_id|>", "Ġ", "Ġthe", "ĠĠ", "Ċ", "\u2581", "\u2581\u2581", "")),
            (1, GgufValueGen.Utf8.Select(b => Encoding.UTF8.GetString(b))));
        var count = Gen.Frequency((1, Gen.Constant(0)), (4, Gen.Choose(1, 40)), (4, Gen.Choose(256, 600)));
        var tokens = count.SelectMany(n => Gen.ArrayOf(piece, n));

        Gen<GgufValue?> Optional(Gen<GgufValue> g) => Gen.Frequency((1, Gen.Constant<GgufValue?>(null)), (4, g.Select(v => (GgufValue?)v)));
        Gen<GgufValue> Floats(int n) => Gen.Frequency(
            (6, Gen.ArrayOf(GgufValueGen.Float, n).Select(a => GgufValue.FromArray(a.Select(f => (float)f).ToArray()))),
            (1, Gen.Choose(0, n + 3).SelectMany(k => Gen.ArrayOf(GgufValueGen.Float, k)).Select(a => GgufValue.FromArray(a.Select(f => (float)f).ToArray()))),
            (1, GgufValueGen.Value));
        var validType = Gen.Elements(1, 1, 1, 1, 2, 3, 4, 5, 6);
        Gen<GgufValue> Types(int n) => Gen.Frequency(
            (8, Gen.ArrayOf(validType, n).Select(GgufValue.FromArray)),
            (1, Gen.ArrayOf(validType, n).SelectMany(a => Gen.Elements(-1, 0, 7, 255).SelectMany(bad => Gen.Choose(0, Math.Max(0, n - 1))
                .Select(at => { if (a.Length > 0) a[at] = bad; return GgufValue.FromArray(a); })))),
            (1, Gen.ArrayOf(Gen.Choose(1, 6).Select(i => (byte)i), n).Select(GgufValue.FromArray)),
            (1, Gen.Choose(0, n + 3).SelectMany(k => Gen.ArrayOf(validType, k)).Select(GgufValue.FromArray)),
            (1, GgufValueGen.Value));
        Gen<GgufValue> Merges(string[] t) => Gen.Frequency(
            (6, Gen.Choose(0, 300).SelectMany(k => Gen.ArrayOf(
                Gen.Frequency(
                    (8, Gen.Two(Gen.Elements(t.Length == 0 ? new[] { "" } : t)).Select(p => p.Item1 + " " + p.Item2)),
                    (1, Gen.Elements("ab", " a", "a ", "a  b", "", " ", "a b c"))), k))
                .Select(m => GgufValue.FromArray(m))),
            (1, GgufValueGen.Value));
        var idKeys = new[] { "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id",
                             "tokenizer.ggml.eot_token_id", "tokenizer.ggml.padding_token_id" };
        Gen<(string, GgufValue)> Id(int n) => Gen.Elements(idKeys).SelectMany(k => Gen.Frequency(
            (6, Gen.Choose(0, Math.Max(0, n - 1)).Select(i => GgufValue.FromUInt32((uint)i))),
            (1, Gen.Elements(GgufValue.FromInt32(-1), GgufValue.FromUInt32(uint.MaxValue), GgufValue.FromUInt32((uint)n))),
            (1, GgufValueGen.Integer.Select(i => GgufValue.FromInt32((int)i))),
            (1, GgufValueGen.Integer.Select(i => GgufValue.FromUInt64((ulong)i))),
            (1, GgufValueGen.Value)).Select(v => (k, v)));
        var vocabulary =
            from model in Gen.Frequency((5, Gen.Constant("llama")), (4, Gen.Constant("gpt2")), (1, Gen.Elements("bert", "", "LLAMA")))
            from t in tokens
            from tokensValue in Gen.Frequency((12, Gen.Constant(GgufValue.FromArray(t))), (1, GgufValueGen.Value))
            from scores in Optional(Floats(t.Length))
            from types in Optional(Types(t.Length))
            from merges in model == "gpt2" ? Optional(Merges(t)) : Gen.Constant<GgufValue?>(null)
            from pre in Gen.Elements<string?>(null, "llama-bpe", "qwen2", "gpt2", "default", "", "phi-2", "unknown-pre")
            from ids in Gen.Choose(0, 3).SelectMany(n => Gen.ArrayOf(Id(t.Length), n))
            from addBos in Gen.Elements<GgufValue?>(null, null, null, GgufValue.FromBool(true), GgufValue.FromBool(false), GgufValue.FromBool(false), GgufValue.FromUInt8(1))
            select new Vocabulary(model, tokensValue, scores, types, merges, pre, ids, addBos);

        var run = new FuzzRun("gguf-vocab", output);
        int index = 0;
        var config = Config.QuickThrowOnFailure.WithMaxTest(cases).WithReplay((ulong)FuzzSettings.Seed, 0x9E3779B97F4A7C15UL).WithStartSize(100).WithEndSize(100);
        Prop.ForAll(vocabulary.ToArbitrary(), v =>
        {
            run.Case(index++, c =>
            {
                string path = c.Path("vocab.gguf");
                c.Log.Add(v.ToString());
                var m = new GgufMetadata();
                m.Set("general.architecture", GgufValue.FromString("llama"));
                m.Set("tokenizer.ggml.model", GgufValue.FromString(v.Model));
                m.Set("tokenizer.ggml.tokens", v.Tokens);
                if (v.Scores is { } s) m.Set("tokenizer.ggml.scores", s);
                if (v.Types is { } ty) m.Set("tokenizer.ggml.token_type", ty);
                if (v.Merges is { } me) m.Set("tokenizer.ggml.merges", me);
                if (v.Pre is { } pre) m.Set("tokenizer.ggml.pre", GgufValue.FromString(pre));
                foreach (var (key, value) in v.Ids) m.Set(key, value);
                if (v.AddBos is { } ab) m.Set("tokenizer.ggml.add_bos_token", ab);
                new GgufWriter(m).Write(path);
                if (c.Rng.Next(5) == 0)
                {
                    var bytes = File.ReadAllBytes(path);
                    var (fields, headerEnd) = GgufFieldMap.Walk(bytes);
                    File.WriteAllBytes(path, c.Mutator().Mutate(bytes, headerEnd, fields, maxMutations: 2));
                }
                c.MustName = path;
                return () =>
                {
                    using var file = GgufFile.Open(path);
                    Tokenizer tokenizer = GgufVocabulary.CreateTokenizer(file);
                    foreach (int stop in GgufVocabulary.StopTokenIds(file, tokenizer)) Assert.InRange(stop, 0, tokenizer.VocabSize - 1);
                    LoadedModelChecks.Tokenize(tokenizer);
                };
            });
            return true;
        }).Check(config);
        run.Report();
    }
}
