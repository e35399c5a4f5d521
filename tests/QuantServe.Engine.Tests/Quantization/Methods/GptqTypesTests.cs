using QuantServe.Engine.Quantization.Methods;

namespace QuantServe.Engine.Tests.Quantization.Methods;

public class GptqTypesTests
{
    [Theory]
    [InlineData("gptq-int4-g128", 4, 128, false, false, true)]
    [InlineData("GPTQ-INT3-G128-ACT", 3, 128, true, false, true)]
    [InlineData("gptq-int4-g64-act-static-asym", 4, 64, true, true, false)]
    [InlineData("gptq-int8", 8, -1, false, false, true)]
    [InlineData("gptq-int2-g32-asym", 2, 32, false, false, false)]
    public void Parse_TypeName_OptionsAndCanonicalName(string type, int bits, int group, bool act, bool staticGroups, bool sym)
    {
        var o = GptqTypes.Parse(type);
        Assert.Equal((bits, group, act, staticGroups, sym), (o.Bits, o.GroupSize, o.ActOrder, o.StaticGroups, o.Symmetric));
        Assert.Equal(type.ToLowerInvariant(), GptqTypes.Name(o));
        Assert.True(GptqTypes.IsGptq(type));
    }

    [Theory]
    [InlineData("gptq-int5-g128")]
    [InlineData("gptq-int4-g0")]
    [InlineData("gptq-int4-static")]
    [InlineData("int4-g128")]
    public void Parse_NotAGptqType_Throws(string type)
    {
        Assert.False(GptqTypes.IsGptq(type));
        Assert.Throws<ArgumentException>(() => GptqTypes.Parse(type));
    }
}
