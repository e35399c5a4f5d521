using System.Buffers.Binary;
using System.Text;

namespace QuantServe.Engine.Tests.TestSupport;

/// <summary>
/// A temporary copy of a real model folder for tests that damage one file: every file starts as a symbolic link to
/// the shared original, and <see cref="Own"/> turns one into a private copy before it is modified. Deleted on dispose.
/// </summary>
public sealed class TempModelFolder : IDisposable
{
    /// <summary>Links every file of <paramref name="source"/> into a new temporary folder.</summary>
    public TempModelFolder(string source)
    {
        Dir = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "quantserve-test-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Dir);
        foreach (var file in Directory.EnumerateFiles(source))
            File.CreateSymbolicLink(Path(System.IO.Path.GetFileName(file)), System.IO.Path.GetFullPath(file));
    }

    /// <summary>An empty temporary folder.</summary>
    public TempModelFolder()
    {
        Dir = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "quantserve-test-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Dir);
    }

    /// <summary>The temporary folder.</summary>
    public string Dir { get; }

    /// <summary>A path inside the folder.</summary>
    public string Path(string name) => System.IO.Path.Combine(Dir, name);

    /// <summary>Replaces the link <paramref name="name"/> by a writable copy of its target and returns its path.</summary>
    public string Own(string name)
    {
        string path = Path(name);
        var info = new FileInfo(path);
        if (info.LinkTarget is { } target)
        {
            File.Delete(path);
            File.Copy(target, path);
            File.SetAttributes(path, FileAttributes.Normal);
        }
        return path;
    }

    /// <summary>Rewrites a JSON file of the folder through a text substitution (the pattern must occur).</summary>
    public void EditText(string name, string from, string to)
    {
        string path = Own(name);
        string text = File.ReadAllText(path);
        if (!text.Contains(from, StringComparison.Ordinal)) throw new InvalidOperationException($"'{from}' not in {name}");
        File.WriteAllText(path, text.Replace(from, to, StringComparison.Ordinal));
    }

    /// <summary>Rewrites the JSON header of a safetensors file, keeping its data section, with a corrected length field.</summary>
    public void EditSafetensorsHeader(string name, Func<string, string> edit)
    {
        string path = Own(name);
        byte[] bytes = File.ReadAllBytes(path);
        int headerLength = checked((int)BinaryPrimitives.ReadUInt64LittleEndian(bytes));
        string header = Encoding.UTF8.GetString(bytes, 8, headerLength);
        byte[] newHeader = Encoding.UTF8.GetBytes(edit(header));
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write);
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)newHeader.Length);
        stream.Write(length);
        stream.Write(newHeader);
        stream.Write(bytes, 8 + headerLength, bytes.Length - 8 - headerLength);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        try { Directory.Delete(Dir, recursive: true); }
        catch (IOException) { }
    }
}
