using QuantServe.Engine.Inference;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tokenization;

namespace QuantServe.Engine.Tests.Fuzzing;

/// <summary>What a fuzz case checks of a reader's result when the reader accepted the mutant.</summary>
internal static unsafe class LoadedModelChecks
{
    /// <summary>Every weight matrix lies inside [<paramref name="start"/>, <paramref name="start"/> + <paramref name="length"/>).</summary>
    public static void MatricesInside(LoadedModel model, byte* start, long length)
    {
        foreach (var m in model.Weights.Matrices)
            Assert.True(m.Data >= start && m.Data + m.ByteCount <= start + length,
                $"matrix {m.Name} [{(long)(m.Data - start)}, +{m.ByteCount}) escapes the {length}-byte file");
    }

    /// <summary>Encodes a short text, runs the model over at most four of its tokens and decodes them: must not crash.</summary>
    public static void ForwardTiny(LoadedModel model)
    {
        var ids = Tokenize(model.Tokenizer);
        ids = ids.Where(i => i >= 0 && i < model.Config.VocabSize).Take(4).ToArray();
        if (ids.Length == 0) ids = [0];
        var llama = new LlamaModel(model, maxBatchTokens: 4);
        var cache = llama.CreateCache(Math.Min(8, model.Config.ContextLength));
        var logits = new float[model.Config.VocabSize];
        llama.Forward(cache, ids.AsMemory(0, Math.Min(ids.Length, cache.Capacity)), logits);
    }

    /// <summary>Encodes and decodes a few texts (ASCII, multi-byte, special-looking) with a tokenizer a reader accepted.</summary>
    public static int[] Tokenize(Tokenizer tokenizer)
    {
        int[] ids = [];
        foreach (var text in new[] { "Once upon a time", " héllo 中文 😀", "<s>x</s>\n\t  ", "" })
        {
            ids = tokenizer.Encode(text, addBos: true, parseSpecial: true);
            foreach (int id in ids) Assert.InRange(id, 0, tokenizer.VocabSize - 1);
            _ = tokenizer.Decode(ids);
        }
        for (int id = 0; id < Math.Min(tokenizer.VocabSize, 600); id++) _ = tokenizer.TokenText(id);
        return tokenizer.Encode("Once upon a time", addBos: true);
    }
}
