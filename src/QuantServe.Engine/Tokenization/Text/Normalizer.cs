using System.Text;
using System.Text.RegularExpressions;

namespace QuantServe.Engine.Tokenization.Text;

/// <summary>A text rewrite applied to each run of text between added tokens before pre-tokenization
/// (Hugging Face tokenizers' <c>normalizer</c>).</summary>
public abstract class Normalizer
{
    /// <summary>Rewrites <paramref name="text"/>.</summary>
    public abstract string Apply(string text);
}

/// <summary><c>Prepend</c>: puts <see cref="Prefix"/> in front of non-empty text.</summary>
public sealed class PrependNormalizer(string prefix) : Normalizer
{
    /// <summary>The text prepended.</summary>
    public string Prefix { get; } = prefix;

    /// <inheritdoc />
    public override string Apply(string text) => text.Length == 0 ? text : Prefix + text;
}

/// <summary><c>Replace</c> with a literal pattern: every occurrence of <see cref="Pattern"/> becomes <see cref="Content"/>.</summary>
public sealed class ReplaceNormalizer(string pattern, string content) : Normalizer
{
    /// <summary>The literal text replaced.</summary>
    public string Pattern { get; } = pattern;

    /// <summary>The replacement.</summary>
    public string Content { get; } = content;

    /// <inheritdoc />
    public override string Apply(string text) => Pattern.Length == 0 ? text : text.Replace(Pattern, Content, StringComparison.Ordinal);
}

/// <summary><c>Replace</c> with a regular-expression pattern.</summary>
public sealed class RegexReplaceNormalizer(Regex pattern, string content) : Normalizer
{
    /// <inheritdoc />
    public override string Apply(string text) => pattern.Replace(text, content.Replace("$", "$$", StringComparison.Ordinal));
}

/// <summary>Unicode normalization (<c>NFC</c>, <c>NFD</c>, <c>NFKC</c>, <c>NFKD</c>) with QuantServe's own tables
/// (<see cref="UnicodeNormalization"/>), since string.Normalize is inert under InvariantGlobalization.</summary>
public sealed class UnicodeNormalizer(NormalizationForm form) : Normalizer
{
    /// <inheritdoc />
    public override string Apply(string text) => UnicodeNormalization.Normalize(text, form);
}

/// <summary><c>Lowercase</c>: invariant-culture lower casing.</summary>
public sealed class LowercaseNormalizer : Normalizer
{
    /// <inheritdoc />
    public override string Apply(string text) => text.ToLowerInvariant();
}

/// <summary><c>Strip</c>: removes leading and/or trailing white space.</summary>
public sealed class StripNormalizer(bool left, bool right) : Normalizer
{
    /// <inheritdoc />
    public override string Apply(string text) => left && right ? text.Trim() : left ? text.TrimStart() : right ? text.TrimEnd() : text;
}
