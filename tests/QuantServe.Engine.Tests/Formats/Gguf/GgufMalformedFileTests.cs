using System.Buffers.Binary;
using System.Text;
using QuantServe.Engine.Formats.Gguf;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Formats.Gguf;

/// <summary>Each case damages a copy of a real llama.cpp file and expects a clear <see cref="ModelLoadException"/>
/// without a large allocation driven by the damaged number.</summary>
public class GgufMalformedFileTests
{
    // Field positions of the first metadata entry (general.architecture = "llama"): key length at 24, key at 32,
    // value type at 52, string length at 56.
    private const int TensorCountAt = 8, KvCountAt = 16, FirstKeyLengthAt = 24, FirstValueTypeAt = 52, FirstStringLengthAt = 56;

    private static readonly string Source = Path.Combine(SharedAssets.Prose15mGguf, "prose-15m-Q2_K.gguf");

    private static void U32(byte[] f, long at, uint v) => BinaryPrimitives.WriteUInt32LittleEndian(f.AsSpan((int)at), v);
    private static void U64(byte[] f, long at, ulong v) => BinaryPrimitives.WriteUInt64LittleEndian(f.AsSpan((int)at), v);

    /// <summary>Position of a length-prefixed GGUF string equal to <paramref name="text"/> (its length field).</summary>
    private static int Find(byte[] f, string text)
    {
        var needle = new byte[8 + Encoding.UTF8.GetByteCount(text)];
        BinaryPrimitives.WriteUInt64LittleEndian(needle, (ulong)(needle.Length - 8));
        Encoding.UTF8.GetBytes(text, needle.AsSpan(8));
        int at = f.AsSpan().IndexOf(needle);
        Assert.True(at >= 0, $"'{text}' not found");
        return at;
    }

    private static int AfterString(byte[] f, string text) => Find(f, text) + 8 + Encoding.UTF8.GetByteCount(text);

    // Tensor info after the name: uint32 n_dims, uint64 ne[n_dims], uint32 type, uint64 offset.
    private static int DimsAt(byte[] f, string tensor) => AfterString(f, tensor) + 4;
    private static int TypeAt(byte[] f, string tensor, int nDims) => DimsAt(f, tensor) + 8 * nDims;
    private static int OffsetAt(byte[] f, string tensor, int nDims) => TypeAt(f, tensor, nDims) + 4;

    private static void Rename(byte[] f, string from, string to)
    {
        Assert.Equal(from.Length, to.Length);
        Encoding.UTF8.GetBytes(to, f.AsSpan(Find(f, from) + 8));
    }

    private static readonly Dictionary<string, (Func<byte[], byte[]> Damage, string Problem)> Cases = new()
    {
        ["empty"] = (f => [], "truncated file: magic"),
        ["truncated in magic"] = (f => f[..3], "truncated file: magic"),
        ["truncated in header"] = (f => f[..20], "truncated file: metadata_kv_count"),
        ["truncated in first key"] = (f => f[..40], "truncated"),
        ["truncated in vocabulary"] = (f => f[..5000], "truncated"),
        ["truncated in tensor infos"] = (f => f[..(AfterString(f, "blk.3.ffn_up.weight") - 3)], "truncated"),
        ["truncated in data"] = (f => f[..(f.Length - 100)], "lies beyond the end of the file"),
        ["wrong magic"] = (f => { "GGML"u8.CopyTo(f); return f; }, "not a GGUF file: magic is 'GGML', expected 'GGUF'"),
        ["version 1"] = (f => { U32(f, 4, 1); return f; }, "GGUF version 1 is not supported"),
        ["version 99"] = (f => { U32(f, 4, 99); return f; }, "unknown GGUF version 99"),
        ["big-endian"] = (f => { U32(f, 4, 3u << 24); return f; }, "big-endian GGUF (version 3) is not supported"),
        ["tensor count 2^60"] = (f => { U64(f, TensorCountAt, 1UL << 60); return f; }, "tensor_count 1152921504606846976 is impossible"),
        ["metadata count 2^60"] = (f => { U64(f, KvCountAt, 1UL << 60); return f; }, "metadata_kv_count 1152921504606846976 is impossible"),
        ["metadata count too high"] = (f => { U64(f, KvCountAt, 19 + 100); return f; }, "metadata"),
        ["key length 2^62"] = (f => { U64(f, FirstKeyLengthAt, 1UL << 62); return f; }, "claims 4611686018427387904 bytes"),
        ["string length 2^62"] = (f => { U64(f, FirstStringLengthAt, 1UL << 62); return f; }, "metadata 'general.architecture' at offset 56 claims 4611686018427387904 bytes"),
        ["string length 2^64-1"] = (f => { U64(f, FirstStringLengthAt, ulong.MaxValue); return f; }, "claims 18446744073709551615 bytes"),
        ["unknown value type"] = (f => { U32(f, FirstValueTypeAt, 13); return f; }, "metadata 'general.architecture' has unknown value type 13"),
        ["array count 2^61"] = (f => { U64(f, AfterString(f, "tokenizer.ggml.tokens") + 8, 1UL << 61); return f; }, "metadata 'tokenizer.ggml.tokens' element count 2305843009213693952 at offset"),
        ["array of unknown type"] = (f => { U32(f, AfterString(f, "tokenizer.ggml.scores") + 4, 99); return f; }, "array of unknown value type 99"),
        ["token string length 2^62"] = (f => { U64(f, Find(f, "<0x41>"), 1UL << 62); return f; }, "metadata 'tokenizer.ggml.tokens' element 68 at offset"),
        ["duplicate metadata key"] = (f => { Rename(f, "llama.context_length", "general.architecture"); return f; }, "duplicate metadata key 'general.architecture'"),
        ["alignment 48"] = (f => { Rename(f, "llama.block_count", "general.alignment"); U32(f, AfterString(f, "general.alignment") + 4, 48); return f; }, "general.alignment 48 is not a power of two"),
        ["alignment 0"] = (f => { Rename(f, "llama.block_count", "general.alignment"); U32(f, AfterString(f, "general.alignment") + 4, 0); return f; }, "general.alignment 0 is not a power of two"),
        ["n_dims 5"] = (f => { U32(f, DimsAt(f, "output_norm.weight") - 4, 5); return f; }, "tensor 'output_norm.weight' has 5 dimensions; GGUF allows at most 4"),
        ["dims 2^40"] = (f => { U64(f, DimsAt(f, "token_embd.weight") + 8, 1UL << 40); return f; }, "tensor 'token_embd.weight' data"),
        ["dims product overflows"] = (f => { int d = DimsAt(f, "token_embd.weight"); U64(f, d, 1UL << 40); U64(f, d + 8, 1UL << 40); return f; }, "tensor 'token_embd.weight' shape [1099511627776, 1099511627776…] overflows"),
        ["dim above 2^63"] = (f => { U64(f, DimsAt(f, "output_norm.weight"), ulong.MaxValue); return f; }, "dimension 0 = 18446744073709551615 is out of range"),
        ["row not a block multiple"] = (f => { U64(f, DimsAt(f, "blk.0.attn_q.weight"), 255); return f; }, "row length 255 is not a multiple of the Q2_K block size 256"),
        ["unknown ggml type 77"] = (f => { U32(f, TypeAt(f, "blk.0.attn_q.weight", 2), 77); return f; }, "tensor 'blk.0.attn_q.weight' has unknown ggml type 77"),
        ["removed ggml type 4"] = (f => { U32(f, TypeAt(f, "blk.0.attn_q.weight", 2), 4); return f; }, "has unknown ggml type 4"),
        ["tensor offset beyond EOF"] = (f => { U64(f, OffsetAt(f, "blk.7.ffn_down.weight", 2), 1UL << 40); return f; }, "tensor 'blk.7.ffn_down.weight' data [1099511627776"),
        ["tensor offset 2^64-32"] = (f => { U64(f, OffsetAt(f, "blk.7.ffn_down.weight", 2), ulong.MaxValue - 31); return f; }, "lies beyond the end of the file"),
        ["misaligned tensor offset"] = (f => { int at = OffsetAt(f, "blk.2.ffn_up.weight", 2); U64(f, at, BinaryPrimitives.ReadUInt64LittleEndian(f.AsSpan(at)) + 1); return f; }, "is not a multiple of the alignment 32"),
        ["duplicate tensor name"] = (f => { Rename(f, "blk.0.attn_k.weight", "blk.0.attn_q.weight"); return f; }, "duplicate tensor name 'blk.0.attn_q.weight'"),
    };

    public static TheoryData<string> CaseNames() => new(Cases.Keys);

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void Open_DamagedCopyOfRealFile_ThrowsModelLoadExceptionNamingFileAndProblem(string name)
    {
        using var dir = new TempDir();
        string path = dir.File("damaged.gguf");
        var (damage, problem) = Cases[name];
        File.WriteAllBytes(path, damage(File.ReadAllBytes(Source)));

        long before = GC.GetAllocatedBytesForCurrentThread();
        var ex = Assert.Throws<ModelLoadException>(() => GgufFile.Open(path).Dispose());
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Contains(Path.GetFullPath(path), ex.Message);
        Assert.True(ex.Message.Contains(problem, StringComparison.Ordinal), $"expected \"{problem}\" in: {ex.Message}");
        // Parsing the whole 32000-token vocabulary legitimately allocates about 1.5 MB; nothing may scale with a damaged count.
        Assert.True(allocated < 3 << 20, $"{allocated} bytes allocated before failing: {ex.Message}");
        Assert.Equal([path], Directory.EnumerateFiles(dir.Path));
    }

    [Fact]
    public void Open_ArraysNestedDeeperThanSixteen_ThrowsInsteadOfRecursing()
    {
        using var dir = new TempDir();
        var value = GgufValue.FromArray(new[] { 1 });
        for (int i = 0; i < 16; i++) value = GgufValue.FromArray([value]);
        var meta = new GgufMetadata();
        meta.Set("deep", value);
        string path = dir.File("deep.gguf");
        new GgufWriter(meta).Write(path);
        var ex = Assert.Throws<ModelLoadException>(() => GgufFile.Open(path).Dispose());
        Assert.Contains("nests arrays more than 16 deep", ex.Message);
    }

    [Fact]
    public void Open_BoolByteOtherThanZeroOrOne_Throws()
    {
        using var dir = new TempDir();
        var meta = new GgufMetadata();
        meta.Set("flag", GgufValue.FromBool(true));
        string path = dir.File("bool.gguf");
        new GgufWriter(meta).Write(path);
        var bytes = File.ReadAllBytes(path);
        Assert.Equal(1, bytes[40]); // after the 24-byte header, the key (8 + 4) and the type id (4)
        bytes[40] = 2;
        File.WriteAllBytes(path, bytes);
        var ex = Assert.Throws<ModelLoadException>(() => GgufFile.Open(path).Dispose());
        Assert.Contains("metadata 'flag' at offset 40 is a bool with byte value 2", ex.Message);
    }
}
