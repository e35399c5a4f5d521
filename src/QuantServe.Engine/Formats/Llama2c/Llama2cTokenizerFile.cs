using System.Text;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tokenization;

namespace QuantServe.Engine.Formats.Llama2c;

/// <summary>
/// Reads llama2.c's tokenizer file: int32 max_token_length, then for each token float32 score, int32 byte length
/// and the piece's bytes. Ids 0, 1, 2 are &lt;unk&gt;, &lt;s&gt;, &lt;/s&gt;; pieces use a plain space for U+2581.
/// </summary>
public static class Llama2cTokenizerFile
{
    /// <summary>Reads <paramref name="path"/> holding <paramref name="vocabSize"/> tokens.</summary>
    public static SentencePieceBpeTokenizer Read(string path, int vocabSize)
    {
        byte[] data;
        try { data = File.ReadAllBytes(path); } // small (≤ a few hundred KB): parsed once into pieces
        catch (IOException e) { throw new ModelLoadException(path, "cannot read tokenizer file", e); }
        if (vocabSize <= 0 || vocabSize > 1 << 22) throw new ModelLoadException(path, $"implausible vocabulary size {vocabSize}");
        var pieces = new string[vocabSize];
        var scores = new float[vocabSize];
        var span = data.AsSpan();
        if (span.Length < 4) throw new ModelLoadException(path, "truncated tokenizer file (no header)");
        int maxLen = BitConverter.ToInt32(span);
        if (maxLen <= 0 || maxLen > 1 << 16) throw new ModelLoadException(path, $"implausible max_token_length {maxLen}");
        int pos = 4;
        for (int i = 0; i < vocabSize; i++)
        {
            if (pos + 8 > span.Length) throw new ModelLoadException(path, $"truncated tokenizer file at token {i} of {vocabSize}");
            scores[i] = BitConverter.ToSingle(span[pos..]);
            int len = BitConverter.ToInt32(span[(pos + 4)..]);
            pos += 8;
            if (len < 0 || len > maxLen || pos + len > span.Length)
                throw new ModelLoadException(path, $"token {i} has invalid length {len} (max {maxLen}, {span.Length - pos} bytes left)");
            pieces[i] = Encoding.UTF8.GetString(span.Slice(pos, len));
            pos += len;
        }
        // llama2c's exporter writes BOS and EOS as "\n<s>\n" and "\n</s>\n" (for its run.c's printing); their pieces are <s> and </s>.
        if (vocabSize > 2 && pieces[1] == "\n<s>\n") pieces[1] = "<s>";
        if (vocabSize > 2 && pieces[2] == "\n</s>\n") pieces[2] = "</s>";
        return new SentencePieceBpeTokenizer(pieces, scores, types: null, bosId: 1, eosId: 2, unkId: 0);
    }
}
