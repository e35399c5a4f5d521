namespace QuantServe.Engine.Formats;

/// <summary>
/// A model folder written under a hidden temporary name beside its destination (same file system, so the final rename is
/// atomic) and renamed into place by <see cref="Commit"/> only when complete. Disposing an uncommitted folder deletes
/// it, so a failed or cancelled write leaves nothing behind.
/// </summary>
public sealed class StagedFolder : IDisposable
{
    private bool _committed;

    /// <summary>Creates the temporary folder for <paramref name="output"/> (made absolute, trailing separators removed).</summary>
    public StagedFolder(string output)
    {
        Output = System.IO.Path.GetFullPath(output.TrimEnd(System.IO.Path.DirectorySeparatorChar, System.IO.Path.AltDirectorySeparatorChar));
        string parent = System.IO.Path.GetDirectoryName(Output)!;
        Directory.CreateDirectory(parent);
        Path = System.IO.Path.Combine(parent, $".{System.IO.Path.GetFileName(Output)}.{Guid.NewGuid():N}.tmp");
        Directory.CreateDirectory(Path);
    }

    /// <summary>The destination folder.</summary>
    public string Output { get; }

    /// <summary>The temporary folder to write into.</summary>
    public string Path { get; }

    /// <summary>
    /// Renames the staged folder to <see cref="Output"/>. A file there is refused; an existing non-empty folder is
    /// replaced only when <paramref name="replaceable"/> accepts it (otherwise the error names <paramref name="kind"/>,
    /// e.g. "a quantized model folder").
    /// </summary>
    public void Commit(Func<string, bool> replaceable, string kind)
    {
        if (File.Exists(Output)) throw new IOException($"{Output} exists and is a file, not a model folder");
        if (Directory.Exists(Output))
        {
            if (!replaceable(Output) && Directory.EnumerateFileSystemEntries(Output).Any())
                throw new IOException($"{Output} exists and is not {kind}; refusing to replace it");
            string old = Output + $".{Guid.NewGuid():N}.old";
            Directory.Move(Output, old);
            Directory.Move(Path, Output);
            _committed = true;
            Directory.Delete(old, recursive: true);
            return;
        }
        Directory.Move(Path, Output);
        _committed = true;
    }

    /// <summary>Deletes the temporary folder unless it was committed.</summary>
    public void Dispose()
    {
        if (_committed) return;
        try { Directory.Delete(Path, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
