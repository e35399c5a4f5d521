using System.IO.MemoryMappedFiles;
using QuantServe.Engine.Models;

namespace QuantServe.Engine.Tensors;

/// <summary>
/// A read-only memory map of a whole file. Weights are used in place through <see cref="Pointer"/>:
/// no tensor is ever copied into a managed array at load time.
/// </summary>
public sealed unsafe class MappedFile : IDisposable
{
    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private byte* _pointer;

    /// <summary>Full path of the mapped file (used in error messages).</summary>
    public string Path { get; }

    /// <summary>Length of the file in bytes.</summary>
    public long Length { get; }

    /// <summary>Start of the mapping. Valid until <see cref="Dispose"/>.</summary>
    public byte* Pointer => _pointer;

    private MappedFile(string path)
    {
        Path = System.IO.Path.GetFullPath(path);
        if (!File.Exists(Path)) throw new FileNotFoundException($"{Path}: file not found", Path);
        // The length comes from the opened stream: FileInfo.Length of a symbolic link (as in the Hugging Face cache's
        // snapshot folders) is the length of the link, not of the file it points to.
        var stream = new FileStream(Path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
        try
        {
            Length = stream.Length;
            if (Length == 0) // an empty file cannot be mapped; readers report it as truncated
            {
                stream.Dispose();
                return;
            }
            _map = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
        _view = _map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        byte* p = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        _pointer = p + _view.PointerOffset;
    }

    /// <summary>Maps <paramref name="path"/> read-only.</summary>
    public static MappedFile Open(string path) => new(path);

    /// <summary>A span over <paramref name="length"/> bytes at <paramref name="offset"/>, bounds-checked against the file.</summary>
    public ReadOnlySpan<byte> Span(long offset, int length)
    {
        if (offset < 0 || length < 0 || offset + length > Length)
            throw new ModelLoadException(Path, $"range [{offset}, {offset + length}) lies beyond the end of the file ({Length} bytes)");
        return new ReadOnlySpan<byte>(_pointer + offset, length);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_pointer != null && _view != null)
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _pointer = null;
        }
        _view?.Dispose();
        _map?.Dispose();
    }
}
