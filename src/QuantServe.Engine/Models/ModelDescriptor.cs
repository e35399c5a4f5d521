namespace QuantServe.Engine.Models;

/// <summary>A model found in a models directory, described without loading it.</summary>
/// <param name="Id">The id clients use: a <c>.gguf</c> file's name without the extension, or the folder's name.</param>
/// <param name="Path">Full path of the file or folder (what <see cref="ModelLoader.Load"/> takes).</param>
/// <param name="Format"><c>gguf</c>, <c>safetensors</c>, <c>llama2c</c> or <c>quantserve</c> (as <see cref="ModelLoader.DetectFormat"/> names it).</param>
/// <param name="FileBytes">Bytes on disk: the file, or the files at the top of the folder (links followed).</param>
public sealed record ModelDescriptor(string Id, string Path, string Format, long FileBytes);

/// <summary>An entry of a models directory that is not a model, and why (for logging).</summary>
/// <param name="Path">Full path of the entry.</param>
/// <param name="Reason">Why it was not taken as a model.</param>
public sealed record SkippedModelEntry(string Path, string Reason);
