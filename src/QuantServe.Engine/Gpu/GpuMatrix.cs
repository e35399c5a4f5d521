using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using QuantServe.Engine.Gpu.Cuda;
using QuantServe.Engine.Quantization.Formats;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Gpu;

/// <summary>Which fused GEMV kernel reads a <see cref="GpuMatrix"/>.</summary>
public enum GpuKernelKind
{
    /// <summary>F32 rows padded to 8 elements.</summary>
    F32,
    /// <summary>F16 rows padded to 8 elements (also the dequantized fallback for formats without a kernel).</summary>
    F16,
    /// <summary>Q8_0, codes and fp16 scales split.</summary>
    Q8_0,
    /// <summary>Q4_0, codes and fp16 scales split.</summary>
    Q4_0,
    /// <summary>Q4_K native 144-byte super-blocks.</summary>
    Q4_K,
    /// <summary>Q5_K native 176-byte super-blocks.</summary>
    Q5_K,
    /// <summary>Q6_K split into 192-byte code blocks, int8 scales and fp16 d.</summary>
    Q6_K,
    /// <summary>IntGroup 4-bit (symmetric or asymmetric).</summary>
    Int4,
    /// <summary>IntGroup 8-bit.</summary>
    Int8,
    /// <summary>NF4 / FP4 codebook (double-quantized absmax resolved at upload).</summary>
    Codebook,
}

/// <summary>The kernel argument describing a matrix; mirrors <c>struct Mat</c> in gemv.cu.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct GpuMat
{
    public ulong Q, S, Z;
    public long QStride, SStride;
    public int Cols, Units, Group;
}

/// <summary>
/// A weight matrix resident on the device in the layout its GEMV kernel reads. Formats whose blocks are 16-byte aligned
/// (Q4_K, Q5_K, F32/F16 with padded rows) are copied as stored; Q8_0, Q4_0, Q6_K, IntGroup and NF4 rows are split into a
/// 16-byte-aligned code array and separate scale arrays so each lane loads its unit with 128-bit loads; a format without
/// a kernel (Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, 2/3-bit integers, LLM.int8, BF16) is dequantized on upload to F16.
/// </summary>
public sealed unsafe class GpuMatrix : IDisposable
{
    private readonly DeviceBuffer _buffer;
    internal readonly GpuMat Mat;

    private GpuMatrix(WeightMatrix source, GpuKernelKind kind, DeviceBuffer buffer, GpuMat mat, bool fallback)
    {
        Name = source.Name;
        Format = source.Format.Name;
        Rows = source.Rows;
        Cols = source.Cols;
        Kind = kind;
        _buffer = buffer;
        Mat = mat;
        Dequantized = fallback;
        StoredBytes = source.ByteCount;
    }

    /// <summary>Tensor name.</summary>
    public string Name { get; }
    /// <summary>The source format's name.</summary>
    public string Format { get; }
    /// <summary>Output features.</summary>
    public int Rows { get; }
    /// <summary>Input features.</summary>
    public int Cols { get; }
    /// <summary>The kernel that reads it.</summary>
    public GpuKernelKind Kind { get; }
    /// <summary>Whether the source format had no kernel and was dequantized to F16.</summary>
    public bool Dequantized { get; }
    /// <summary>Bytes of the source matrix.</summary>
    public long StoredBytes { get; }
    /// <summary>Bytes held on the device (the pool's size class).</summary>
    public long DeviceBytes => _buffer.Capacity;
    /// <summary>Bytes one product reads from the device (codes and scales, without padding slack of the pool).</summary>
    public long ReadBytes => _buffer.Bytes;

    /// <summary>The kernel kind for <paramref name="format"/> and width, or null when it must be dequantized.</summary>
    public static GpuKernelKind? KernelFor(TensorFormat format, int cols) => format switch
    {
        { Ggml: GgmlType.F32 } => GpuKernelKind.F32,
        { Ggml: GgmlType.F16 } => GpuKernelKind.F16,
        { Ggml: GgmlType.Q8_0 } => GpuKernelKind.Q8_0,
        { Ggml: GgmlType.Q4_0 } => GpuKernelKind.Q4_0,
        { Ggml: GgmlType.Q4_K } => GpuKernelKind.Q4_K,
        { Ggml: GgmlType.Q5_K } => GpuKernelKind.Q5_K,
        { Ggml: GgmlType.Q6_K } => GpuKernelKind.Q6_K,
        IntGroupFormat { Bits: 4 } f when f.Group == 0 || f.PerTensor || f.Group % 32 == 0 => GpuKernelKind.Int4,
        IntGroupFormat { Bits: 8 } f when f.Group == 0 || f.PerTensor || f.Group % 16 == 0 => GpuKernelKind.Int8,
        CodebookFormat => GpuKernelKind.Codebook,
        _ => null,
    };

    private static long Align16(long v) => (v + 15) & ~15L;

    /// <summary>Copies <paramref name="w"/> to <paramref name="device"/> in its kernel's layout.</summary>
    public static GpuMatrix Upload(CudaDevice device, WeightMatrix w)
    {
        var (host, mat, qBytes, sBytes, kind, fallback) = HostLayout(w);
        var buffer = device.Allocate(host.Length);
        device.Upload<byte>(host, buffer.Pointer);
        mat.Q = buffer.Pointer;
        mat.S = sBytes > 0 ? buffer.Pointer + (ulong)qBytes : 0;
        if (mat.Z != 0) mat.Z += buffer.Pointer;
        return new GpuMatrix(w, kind, buffer, mat, fallback);
    }

    /// <summary>
    /// The bytes <see cref="Upload"/> copies to the device and the kernel argument with addresses relative to them:
    /// <c>Q = 0</c>, <c>S = qBytes</c> when there are scales, <c>Z</c> an offset or 0 (the layout the kernels index).
    /// </summary>
    internal static (byte[] Host, GpuMat Mat, long QBytes, long SBytes, GpuKernelKind Kind, bool Fallback) HostLayout(WeightMatrix w)
    {
        var kind = KernelFor(w.Format, w.Cols);
        bool fallback = kind == null;
        int rows = w.Rows, cols = w.Cols;
        var mat = new GpuMat { Cols = cols };
        byte[] host;
        long qBytes, sBytes = 0;
        switch (kind ?? GpuKernelKind.F16)
        {
            case GpuKernelKind.F32:
            {
                int padded = (cols + 7) & ~7;
                mat.QStride = padded * 4L; mat.Units = padded / 8;
                host = new byte[rows * mat.QStride];
                for (int r = 0; r < rows; r++) w.RowSpan(r)[..(cols * 4)].CopyTo(host.AsSpan((int)(r * mat.QStride)));
                qBytes = host.Length;
                break;
            }
            case GpuKernelKind.F16 when !fallback:
            {
                int padded = (cols + 7) & ~7;
                mat.QStride = padded * 2L; mat.Units = padded / 8;
                host = new byte[rows * mat.QStride];
                for (int r = 0; r < rows; r++) w.RowSpan(r)[..(cols * 2)].CopyTo(host.AsSpan((int)(r * mat.QStride)));
                qBytes = host.Length;
                break;
            }
            case GpuKernelKind.F16:
            {
                int padded = (cols + 7) & ~7;
                mat.QStride = padded * 2L; mat.Units = padded / 8;
                host = new byte[rows * mat.QStride];
                var row = new float[cols];
                for (int r = 0; r < rows; r++)
                {
                    w.DequantizeRow(r, row);
                    var dst = MemoryMarshal.Cast<byte, Half>(host.AsSpan((int)(r * mat.QStride), cols * 2));
                    for (int c = 0; c < cols; c++) dst[c] = (Half)row[c];
                }
                qBytes = host.Length;
                break;
            }
            case GpuKernelKind.Q4_K or GpuKernelKind.Q5_K:
                mat.QStride = w.RowBytes; mat.Units = cols / 256 * 4;
                host = new byte[rows * w.RowBytes];
                new ReadOnlySpan<byte>(w.Data, host.Length).CopyTo(host);
                qBytes = host.Length;
                break;
            case GpuKernelKind.Q8_0 or GpuKernelKind.Q4_0:
            {
                bool q8 = kind == GpuKernelKind.Q8_0;
                int nb = cols / 32, blockBytes = q8 ? 34 : 18, codeBytes = blockBytes - 2;
                mat.QStride = nb * codeBytes; mat.SStride = nb * 2; mat.Units = nb;
                qBytes = Align16(rows * mat.QStride);
                sBytes = rows * mat.SStride;
                host = new byte[qBytes + sBytes];
                for (int r = 0; r < rows; r++)
                {
                    var src = w.RowSpan(r);
                    for (int b = 0; b < nb; b++)
                    {
                        src.Slice(b * blockBytes, 2).CopyTo(host.AsSpan((int)(qBytes + r * mat.SStride + b * 2)));
                        src.Slice(b * blockBytes + 2, codeBytes).CopyTo(host.AsSpan((int)(r * mat.QStride + b * codeBytes)));
                    }
                }
                break;
            }
            case GpuKernelKind.Q6_K:
            {
                int nsb = cols / 256;
                mat.QStride = nsb * 192L; mat.SStride = nsb * 16L; mat.Units = nsb * 4;
                qBytes = rows * mat.QStride;
                sBytes = rows * mat.SStride + Align16(rows * nsb * 2L);
                host = new byte[qBytes + sBytes];
                long dOffset = qBytes + rows * mat.SStride;
                for (int r = 0; r < rows; r++)
                {
                    var src = w.RowSpan(r);
                    for (int b = 0; b < nsb; b++)
                    {
                        var blk = src.Slice(b * 210, 210);
                        blk[..192].CopyTo(host.AsSpan((int)(r * mat.QStride + b * 192)));
                        blk.Slice(192, 16).CopyTo(host.AsSpan((int)(qBytes + r * mat.SStride + b * 16)));
                        blk.Slice(208, 2).CopyTo(host.AsSpan((int)(dOffset + (r * nsb + b) * 2L)));
                    }
                }
                mat.Z = (ulong)dOffset; // relative until the buffer exists
                break;
            }
            case GpuKernelKind.Int4 or GpuKernelKind.Int8:
            {
                var f = (IntGroupFormat)w.Format;
                int ng = f.GroupCount(cols);
                int header = (ng * 4 + (f.Asymmetric ? ng : 0) + 3) & ~3;
                long codeBytes = w.RowBytes - header;
                mat.QStride = codeBytes; mat.SStride = ng * 4L; mat.Units = (int)(codeBytes / 16);
                mat.Group = f.Group == 0 || f.PerTensor ? Math.Max(cols, 1) : f.Group;
                qBytes = rows * codeBytes;
                long zBytes = f.Asymmetric ? Align16(rows * (long)ng) : 0;
                sBytes = Align16(rows * mat.SStride) + zBytes;
                host = new byte[qBytes + sBytes];
                long zOffset = qBytes + Align16(rows * mat.SStride);
                for (int r = 0; r < rows; r++)
                {
                    var src = w.RowSpan(r);
                    src[(int)header..].CopyTo(host.AsSpan((int)(r * codeBytes)));
                    src[..(ng * 4)].CopyTo(host.AsSpan((int)(qBytes + r * mat.SStride)));
                    if (f.Asymmetric) src.Slice(ng * 4, ng).CopyTo(host.AsSpan((int)(zOffset + (long)r * ng)));
                }
                if (f.Asymmetric) mat.Z = (ulong)zOffset;
                break;
            }
            case GpuKernelKind.Codebook:
            {
                var f = (CodebookFormat)w.Format;
                int nb = (cols + 63) / 64;
                long codeBytes = nb * 32L, scaleBytes = w.RowBytes - codeBytes;
                mat.QStride = codeBytes; mat.SStride = nb * 4L; mat.Units = nb;
                qBytes = rows * codeBytes;
                sBytes = rows * mat.SStride;
                host = new byte[qBytes + sBytes];
                for (int r = 0; r < rows; r++)
                {
                    var src = w.RowSpan(r);
                    src[(int)scaleBytes..].CopyTo(host.AsSpan((int)(r * codeBytes)));
                    var scales = MemoryMarshal.Cast<byte, float>(host.AsSpan((int)(qBytes + r * mat.SStride), nb * 4));
                    if (!f.DoubleQuant) MemoryMarshal.Cast<byte, float>(src[..(nb * 4)]).CopyTo(scales);
                    else
                    {
                        // Per-row double quantization: offset, ⌈nb/256⌉ float scales, nb int8 codes (CodebookFormat's layout).
                        float offset = Unsafe.ReadUnaligned<float>(ref MemoryMarshal.GetReference(src));
                        int ndq = (nb + 255) / 256;
                        for (int b = 0; b < nb; b++)
                            scales[b] = offset + Unsafe.ReadUnaligned<float>(ref Unsafe.AsRef(in src[4 + 4 * (b / 256)])) * (sbyte)src[4 + 4 * ndq + b];
                    }
                }
                break;
            }
            default: throw new InvalidOperationException($"{w}: no upload path");
        }
        if (fallback) kind = GpuKernelKind.F16;
        mat.S = sBytes > 0 ? (ulong)qBytes : 0;
        return (host, mat, qBytes, sBytes, kind!.Value, fallback);
    }

    /// <inheritdoc />
    public void Dispose() => _buffer.Dispose();

    /// <inheritdoc />
    public override string ToString() => $"{Name} [{Rows}×{Cols}] {Format} → {Kind}{(Dequantized ? " (dequantized)" : "")}";
}
