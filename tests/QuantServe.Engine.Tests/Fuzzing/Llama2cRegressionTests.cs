using System.Buffers.Binary;
using QuantServe.Engine.Formats.Llama2c;
using QuantServe.Engine.Models;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Fuzzing;

/// <summary>Bugs the llama2.c fuzzing found, each with its minimal mutant.</summary>
public class Llama2cRegressionTests
{
    /// <summary>Fuzzing bug 2: vocab_size = int.MinValue (a negative vocab_size means "separate classifier") made
    /// Math.Abs throw OverflowException. The mutant is stories260K's 28-byte header with that one field rewritten.</summary>
    [Fact]
    public void Load_VocabSizeIntMinValue_ThrowsModelLoadException()
    {
        using var dir = new TempModelFolder();
        var header = File.ReadAllBytes(Path.Combine(SharedAssets.Stories260K, "stories260K.bin"))[..28];
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(20), int.MinValue);
        string path = dir.Path("stories260K.bin");
        File.WriteAllBytes(path, header);
        File.Copy(Path.Combine(SharedAssets.Stories260K, "tok512.bin"), dir.Path("tok512.bin"));
        var e = Assert.Throws<ModelLoadException>(() => Llama2cModelLoader.Load(path));
        Assert.Equal(path, e.File);
        Assert.Contains("vocab_size=-2147483648", e.Problem);
    }
}
