namespace QuantServe.Engine.Formats.Gguf;

/// <summary>The write-only view a tensor data callback writes into: forwards to the file and refuses to go past the tensor's size.</summary>
internal sealed class TensorDataStream(Stream inner, string tensor, long size) : Stream
{
    public long Written { get; private set; }

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => Written;
    public override long Position { get => Written; set => throw new NotSupportedException(); }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        if (buffer.Length > size - Written)
            throw new InvalidOperationException($"tensor '{tensor}': its data writer wrote more than the tensor's {size} bytes");
        inner.Write(buffer);
        Written += buffer.Length;
    }

    public override void WriteByte(byte value) => Write([value]);
    public override void Flush() { }
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}
