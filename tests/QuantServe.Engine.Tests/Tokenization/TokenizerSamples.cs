namespace QuantServe.Engine.Tests.Tokenization;

/// <summary>Hand-picked text that exercises byte fallback, surrogate pairs, combining marks and odd white space.</summary>
public static class TokenizerSamples
{
    public static readonly string[] Multilingual =
    [
        "日本語のテキストを分割する。",
        "中文分词测试：你好，世界！",
        "한국어 문장입니다.",
        "Llamas 🦙 and rockets 🚀, family 👩‍👩‍👧 and flags 🇫🇷.",
        "Café naïve résumé — e\u0301 (combining) and ﬁ ligature",
        "Ελληνικά και Русский текст, עברית, العربية, हिन्दी",
        "Rare CJK 𠜎𠜱𠝹 and math 𝑥 + 𝑦 ≡ 𝔽",
        "  leading spaces, trailing spaces   ",
        "tabs\tand\r\nwindows newlines\n\n\nand a form feed\f",
        "control \u0001\u0002\u001f characters and NUL \u0000 too",
        "a piece spelled <0x41> and <s> and </s> as text",
        "",
        " ",
        "x",
        "ℌ𝔢𝔩𝔩𝔬 ⅷ ½ ² ٣",
    ];

    /// <summary>The samples joined with newlines: one long text.</summary>
    public static string AllJoined => string.Join("\n", Multilingual);
}
