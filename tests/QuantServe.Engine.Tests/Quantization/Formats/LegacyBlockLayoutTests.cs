using System.Runtime.CompilerServices;
using QuantServe.Engine.Quantization.Formats;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Tests.Quantization.Formats;

public class LegacyBlockLayoutTests
{
    [Fact]
    public void SizeOf_EveryBlockStruct_EqualsGgmlBlockSize()
    {
        Assert.Equal(18, Unsafe.SizeOf<BlockQ4_0>());
        Assert.Equal(20, Unsafe.SizeOf<BlockQ4_1>());
        Assert.Equal(22, Unsafe.SizeOf<BlockQ5_0>());
        Assert.Equal(24, Unsafe.SizeOf<BlockQ5_1>());
        Assert.Equal(34, Unsafe.SizeOf<BlockQ8_0>());
        Assert.Equal(36, Unsafe.SizeOf<BlockQ8_1>());
        Assert.Equal(Q8Activations.Q8_0BlockBytes, Unsafe.SizeOf<BlockQ8_0>());
        Assert.Equal(Q8Activations.Q8_1BlockBytes, Unsafe.SizeOf<BlockQ8_1>());
    }

    [Theory]
    [MemberData(nameof(LegacyTestData.Formats), MemberType = typeof(LegacyTestData))]
    public void Registry_LegacyFormat_MatchesGgmlGeometry(string name)
    {
        var f = LegacyTestData.Format(name);
        Assert.Equal(name, f.Name);
        Assert.NotNull(f.Ggml);
        Assert.Same(f, TensorFormats.ForGgml(f.Ggml!.Value));
        var (blockSize, typeSize) = GgmlTypeInfo.Geometry(f.Ggml.Value)!.Value;
        Assert.Equal(32, blockSize);
        Assert.Equal(typeSize, f.BlockBytes);
        Assert.Equal(GgmlTypeInfo.RowBytes(f.Ggml.Value, 768), f.RowBytes(768));
        Assert.True(f.SupportsWidth(256));
        Assert.False(f.SupportsWidth(48));
        Assert.False(f.SupportsWidth(0));
        Assert.Throws<ArgumentException>(() => f.RowBytes(40));
        Assert.Equal(f.UsesQ8_1 ? 8 * 36 + 8 * 8 : 8 * 34 + 8 * 4, f.ActivationBytes(256));
    }

    [Theory]
    [MemberData(nameof(LegacyTestData.Formats), MemberType = typeof(LegacyTestData))]
    public void QuantizeRow_BadLengths_ThrowArgumentException(string name)
    {
        var f = LegacyTestData.Format(name);
        Assert.Throws<ArgumentException>(() => f.QuantizeRow(new float[40], new byte[100]));
        Assert.Throws<ArgumentException>(() => f.QuantizeRow(new float[64], new byte[f.BlockBytes]));
        Assert.Throws<ArgumentException>(() => f.DequantizeRow(new byte[f.BlockBytes], new float[64]));
        Assert.Throws<ArgumentException>(() => f.PrepareActivation(new float[33], new byte[200]));
    }
}
