using QuantServe.Engine.Formats.Gguf;
using QuantServe.Engine.Tests.TestSupport;

namespace QuantServe.Engine.Tests.Formats.Gguf;

public class GgufFileTypeTests
{
    [Theory]
    [MemberData(nameof(GgufFileTests.AllFiles), MemberType = typeof(GgufFileTests))]
    public void Name_FileTypeOfLlamaQuantizeOutput_IsTheRecipeInItsFileName(string name)
    {
        using var f = GgufFile.Open(Path.Combine(SharedAssets.Prose15mGguf, name));
        string recipe = Path.GetFileNameWithoutExtension(name)["prose-15m-".Length..];
        long? id = f.Metadata.GetIntegerOrNull("general.file_type");
        if (recipe == "f16") Assert.Null(id); // the converter's output carries no file type
        else
        {
            Assert.Equal(recipe, GgufFileType.Name(id!.Value));
            Assert.Equal(id, GgufFileType.Id(recipe.ToLowerInvariant()));
        }
    }

    [Fact]
    public void Name_RetiredOrUnknownId_IsNull()
    {
        Assert.Null(GgufFileType.Name(4));
        Assert.Null(GgufFileType.Name(-1));
        Assert.Null(GgufFileType.Id("Q4_2"));
    }
}
