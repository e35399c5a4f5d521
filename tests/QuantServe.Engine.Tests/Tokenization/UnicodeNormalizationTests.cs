using System.Text;
using QuantServe.Engine.Tokenization.Text;

namespace QuantServe.Engine.Tests.Tokenization;

public class UnicodeNormalizationTests
{
    // Expected forms computed with CPython's unicodedata (Unicode 14): composition, decomposition, canonical
    // reordering, composition exclusions (U+0958), singletons (U+212B), Hangul, compatibility forms, astral letters.
    [Theory]
    [InlineData("e\u0301", "\u00e9", "e\u0301", "\u00e9", "e\u0301")]
    [InlineData("\u00e9", "\u00e9", "e\u0301", "\u00e9", "e\u0301")]
    [InlineData("\ufb01", "\ufb01", "\ufb01", "fi", "fi")]
    [InlineData("\u2460", "\u2460", "\u2460", "1", "1")]
    [InlineData("\ud55c", "\ud55c", "\u1112\u1161\u11ab", "\ud55c", "\u1112\u1161\u11ab")]
    [InlineData("\u1e0b\u0323", "\u1e0d\u0307", "d\u0323\u0307", "\u1e0d\u0307", "d\u0323\u0307")]
    [InlineData("\u0915\u093c", "\u0915\u093c", "\u0915\u093c", "\u0915\u093c", "\u0915\u093c")]
    [InlineData("\u212b", "\u00c5", "A\u030a", "\u00c5", "A\u030a")]
    [InlineData("\u01c4", "\u01c4", "\u01c4", "D\u017d", "DZ\u030c")]
    [InlineData("\u1100\u1161\u11a8", "\uac01", "\u1100\u1161\u11a8", "\uac01", "\u1100\u1161\u11a8")]
    [InlineData("a\u0328\u0301\u0323", "\u0105\u0323\u0301", "a\u0328\u0323\u0301", "\u0105\u0323\u0301", "a\u0328\u0323\u0301")]
    [InlineData("\u0301a", "\u0301a", "\u0301a", "\u0301a", "\u0301a")]
    [InlineData("x\u0300\u0315\u0300", "x\u0300\u0300\u0315", "x\u0300\u0300\u0315", "x\u0300\u0300\u0315", "x\u0300\u0300\u0315")]
    [InlineData("\u00c5\u0301", "\u01fa", "A\u030a\u0301", "\u01fa", "A\u030a\u0301")]
    [InlineData("\u1e9b\u0323", "\u1e9b\u0323", "\u017f\u0323\u0307", "\u1e69", "s\u0323\u0307")]
    [InlineData("\u00bd\u2075", "\u00bd\u2075", "\u00bd\u2075", "1\u204425", "1\u204425")]
    [InlineData("\U0001d400", "\U0001d400", "\U0001d400", "A", "A")]
    [InlineData("Caf\u00e9 \uff21\uff22 \u3000 \u2126", "Caf\u00e9 \uff21\uff22 \u3000 \u03a9", "Cafe\u0301 \uff21\uff22 \u3000 \u03a9", "Caf\u00e9 AB   \u03a9", "Cafe\u0301 AB   \u03a9")]
    public void Normalize_KnownStrings_MatchUnicodeReference(string input, string nfc, string nfd, string nfkc, string nfkd)
    {
        Assert.Equal(nfc, UnicodeNormalization.Normalize(input, NormalizationForm.FormC));
        Assert.Equal(nfd, UnicodeNormalization.Normalize(input, NormalizationForm.FormD));
        Assert.Equal(nfkc, UnicodeNormalization.Normalize(input, NormalizationForm.FormKC));
        Assert.Equal(nfkd, UnicodeNormalization.Normalize(input, NormalizationForm.FormKD));
    }

    [Fact]
    public void Normalize_EvalTextAndSamples_NfcIsIdempotentAndNfdRecomposes()
    {
        foreach (var text in TokenizerSamples.Multilingual.Append(ProseTokenizers.EvalText("pydoc.txt")))
        {
            string nfc = UnicodeNormalization.Normalize(text, NormalizationForm.FormC);
            Assert.Equal(nfc, UnicodeNormalization.Normalize(nfc, NormalizationForm.FormC));
            Assert.Equal(nfc, UnicodeNormalization.Normalize(UnicodeNormalization.Normalize(text, NormalizationForm.FormD), NormalizationForm.FormC));
        }
    }
}
