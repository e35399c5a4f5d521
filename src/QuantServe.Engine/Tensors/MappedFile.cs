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
        var info = new FileInfo(Path);
        if (!info.Exists) throw new FileNotFoundException($"{Path}: file not found", Path);
        Length = info.Length;
        if (Length == 0) return; // an empty file cannot be mapped; readers report it as truncated
        _map = MemoryMappedFile.CreateFromFile(Path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
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
