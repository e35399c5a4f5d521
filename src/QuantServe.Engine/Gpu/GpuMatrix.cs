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
    /// <summary>Q4_K: codes repacked into per-sub-block 16-byte pieces, 16-byte super-block headers apart (see <see cref="Q4KRepack"/>).</summary>
    Q4_K,
    /// <summary>Q5_K: low bits in per-sub-block 16-byte pieces, fifth bits and headers apart (see <see cref="Q5KRepack"/>).</summary>
    Q5_K,
    /// <summary>Q6_K: low nibbles in per-32-element 16-byte pieces, high parts, int8 scales and fp16 d apart (see <see cref="Q6KRepack"/>).</summary>
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
/// A weight matrix resident on the device in the layout its GEMV kernel reads. F32/F16 rows are copied as stored (padded);
/// the k-quants are repacked into 16-byte pieces (<see cref="Q4KRepack"/>, <see cref="Q5KRepack"/>, <see cref="Q6KRepack"/>);
/// Q8_0, Q4_0, IntGroup and NF4 rows are split into a
/// 16-byte-aligned code array and separate scale arrays so each lane loads its unit with 128-bit loads (NF4/FP4 also carry
/// their codebook as the integer digit table of <see cref="CodebookTable"/> at <c>Z</c>); a format without
/// a kernel (Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, 2/3-bit integers, LLM.int8, BF16) is dequantized on upload to F16.
/// </summary>
public sealed unsafe class GpuMatrix : IDisposable
{
    private readonly DeviceBuffer? _buffer;
    private readonly long _readBytes, _deviceBytes;
    internal readonly GpuMat Mat;

    private GpuMatrix(string name, TensorFormat format, int rows, int cols, long storedBytes, GpuKernelKind kind, DeviceBuffer? buffer,
        GpuMat mat, bool fallback, long readBytes, long deviceBytes)
    {
        Name = name;
        Format = format.Name;
        Rows = rows;
        Cols = cols;
        Kind = kind;
        _buffer = buffer;
        Mat = mat;
        Dequantized = fallback;
        StoredBytes = storedBytes;
        _readBytes = readBytes;
        _deviceBytes = deviceBytes;
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
    /// <summary>Bytes held on the device (the pool's size class; a row range of a stacked matrix: its share).</summary>
    public long DeviceBytes => _deviceBytes;
    /// <summary>Bytes one product reads from the device (codes and scales, without padding slack of the pool).</summary>
    public long ReadBytes => _readBytes;
    /// <summary>Whether this is a row range of a stacked matrix (see <see cref="UploadStacked"/>), not owning device memory.</summary>
    public bool IsView => _buffer == null;

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
        return new GpuMatrix(w.Name, w.Format, w.Rows, w.Cols, w.ByteCount, kind, buffer, mat, fallback, buffer.Bytes, buffer.Capacity);
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
            case GpuKernelKind.Q4_K or GpuKernelKind.Q8_0 or GpuKernelKind.Q4_0 or GpuKernelKind.Int4 or GpuKernelKind.Q5_K or GpuKernelKind.Q6_K
                or GpuKernelKind.Int8 or GpuKernelKind.Codebook:
            {
                var (codes, scales, zeros) = DotLayout(w, ref mat);
                qBytes = Align16(codes.Length);
                long zOffset = qBytes + Align16(scales.Length);
                sBytes = zOffset - qBytes + (zeros?.Length ?? 0);
                host = new byte[qBytes + sBytes];
                codes.CopyTo(host, 0);
                scales.CopyTo(host, qBytes);
                if (zeros != null) { zeros.CopyTo(host, zOffset); mat.Z = (ulong)zOffset; }
                break;
            }
            default: throw new InvalidOperationException($"{w}: no upload path");
        }
        if (fallback) kind = GpuKernelKind.F16;
        mat.S = sBytes > 0 ? (ulong)qBytes : 0;
        return (host, mat, qBytes, sBytes, kind!.Value, fallback);
    }

    /// <summary>Bytes of the codebook digit table <see cref="CodebookTable"/> writes (16 high digits, then 16 low digits).</summary>
    internal const int CodebookTableBytes = 32;

    /// <summary>Largest code value times this is the biggest integer the two-byte tables of <see cref="CodebookTable"/> hold.</summary>
    public const float CodebookScale = 32767f;

    /// <summary>
    /// The codebook as the integer-dot kernel (gemvq.cu FMT_NF4) reads it: for each code v, I = round(32767 · c[v]) split as
    /// I = 256 · h + l with h a signed byte (bytes 0..15 of <paramref name="destination"/>) and l an unsigned byte (bytes
    /// 16..31). |I/32767 − c[v]| ≤ 1/65534 for code values in [−1, 1] (NF4 and FP4 both are).
    /// </summary>
    internal static void CodebookTable(ReadOnlySpan<float> values, Span<byte> destination)
    {
        if (values.Length != 16 || destination.Length != 32) throw new ArgumentException("a 16-entry codebook and 32 table bytes");
        for (int v = 0; v < 16; v++)
        {
            if (!(Math.Abs(values[v]) <= 1f)) throw new ArgumentException($"codebook value {values[v]} outside [-1, 1]");
            int i = (int)Math.Round(values[v] * (double)CodebookScale, MidpointRounding.ToEven);
            destination[v] = (byte)(sbyte)(i >> 8);
            destination[16 + v] = (byte)(i & 255);
        }
    }

    /// <summary>
    /// The split layout of the integer-dot kinds: codes [rows][qStride] in 16-byte pieces (Q8_0: 32 codes per block; Q4_0,
    /// int4: 16 bytes per 32 codes; int8: 16 bytes per 16 codes; Q4_K, Q5_K, Q6_K: repacked per 32 elements, see
    /// <see cref="Q4KRepack"/>, <see cref="Q5KRepack"/>, <see cref="Q6KRepack"/>, whose high bits follow a row's pieces),
    /// scales [rows][sStride] (Q8_0/Q4_0: fp16 d per block; int4/int8: f32 per group; Q4_K, Q5_K: the 16-byte super-block
    /// headers; Q6_K: int8 scales then fp16 d; NF4/FP4: f32 absmax per 64, double quantization resolved) and, for
    /// asymmetric int4/int8, zero points [rows][groups] (NF4/FP4 instead: the 32-byte digit table of
    /// <see cref="CodebookTable"/>). Sets the strides, units and group of <paramref name="mat"/>.
    /// </summary>
    private static (byte[] Codes, byte[] Scales, byte[]? Zeros) DotLayout(WeightMatrix w, ref GpuMat mat)
    {
        int rows = w.Rows, cols = w.Cols;
        byte[] codes, scales;
        byte[]? zeros = null;
        switch (KernelFor(w.Format, cols))
        {
            case GpuKernelKind.Q4_K:
            {
                int nsb = cols / 256;
                mat.QStride = nsb * 128L; mat.SStride = nsb * 16L; mat.Units = nsb * 8;
                codes = new byte[rows * mat.QStride];
                scales = new byte[rows * mat.SStride];
                for (int r = 0; r < rows; r++)
                    Q4KRepack.Row(w.RowSpan(r), codes.AsSpan((int)(r * mat.QStride), (int)mat.QStride), scales.AsSpan((int)(r * mat.SStride), (int)mat.SStride));
                break;
            }
            case GpuKernelKind.Q5_K:
            {
                int nsb = cols / 256;
                mat.QStride = nsb * (long)Q5KRepack.CodeBytes; mat.SStride = nsb * 16L; mat.Units = nsb * 8;
                codes = new byte[rows * mat.QStride];
                scales = new byte[rows * mat.SStride];
                for (int r = 0; r < rows; r++)
                    Q5KRepack.Row(w.RowSpan(r), codes.AsSpan((int)(r * mat.QStride), (int)mat.QStride), scales.AsSpan((int)(r * mat.SStride), (int)mat.SStride));
                break;
            }
            case GpuKernelKind.Q6_K:
            {
                int nsb = cols / 256;
                mat.QStride = nsb * (long)Q6KRepack.CodeBytes; mat.SStride = nsb * (long)Q6KRepack.ScaleBytes; mat.Units = nsb * 8;
                codes = new byte[rows * mat.QStride];
                scales = new byte[rows * mat.SStride];
                for (int r = 0; r < rows; r++)
                    Q6KRepack.Row(w.RowSpan(r), codes.AsSpan((int)(r * mat.QStride), (int)mat.QStride), scales.AsSpan((int)(r * mat.SStride), (int)mat.SStride));
                break;
            }
            case GpuKernelKind.Q8_0 or GpuKernelKind.Q4_0:
            {
                bool q8 = w.Format.Ggml == GgmlType.Q8_0;
                int nb = cols / 32, blockBytes = q8 ? 34 : 18, codeBytes = blockBytes - 2;
                mat.QStride = nb * codeBytes; mat.SStride = nb * 2; mat.Units = nb;
                codes = new byte[rows * mat.QStride];
                scales = new byte[rows * mat.SStride];
                for (int r = 0; r < rows; r++)
                {
                    var src = w.RowSpan(r);
                    for (int b = 0; b < nb; b++)
                    {
                        src.Slice(b * blockBytes, 2).CopyTo(scales.AsSpan((int)(r * mat.SStride + b * 2)));
                        src.Slice(b * blockBytes + 2, codeBytes).CopyTo(codes.AsSpan((int)(r * mat.QStride + b * codeBytes)));
                    }
                }
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
                codes = new byte[rows * codeBytes];
                scales = new byte[rows * mat.SStride];
                if (f.Asymmetric) zeros = new byte[rows * (long)ng];
                for (int r = 0; r < rows; r++)
                {
                    var src = w.RowSpan(r);
                    src[header..].CopyTo(codes.AsSpan((int)(r * codeBytes)));
                    src[..(ng * 4)].CopyTo(scales.AsSpan((int)(r * mat.SStride)));
                    if (f.Asymmetric) src.Slice(ng * 4, ng).CopyTo(zeros.AsSpan((int)((long)r * ng)));
                }
                break;
            }
            case GpuKernelKind.Codebook:
            {
                var f = (CodebookFormat)w.Format;
                int nb = (cols + 63) / 64;
                long codeBytes = nb * 32L, scaleBytes = w.RowBytes - codeBytes;
                mat.QStride = codeBytes; mat.SStride = nb * 4L; mat.Units = nb;
                codes = new byte[rows * codeBytes];
                scales = new byte[rows * mat.SStride];
                zeros = new byte[CodebookTableBytes];
                CodebookTable(f.Values, zeros);
                for (int r = 0; r < rows; r++)
                {
                    var src = w.RowSpan(r);
                    src[(int)scaleBytes..].CopyTo(codes.AsSpan((int)(r * codeBytes)));
                    var dst = MemoryMarshal.Cast<byte, float>(scales.AsSpan((int)(r * mat.SStride), nb * 4));
                    if (!f.DoubleQuant) MemoryMarshal.Cast<byte, float>(src[..(nb * 4)]).CopyTo(dst);
                    else
                    {
                        // Per-row double quantization: offset, ⌈nb/256⌉ float scales, nb int8 codes (CodebookFormat's layout).
                        float offset = Unsafe.ReadUnaligned<float>(ref MemoryMarshal.GetReference(src));
                        int ndq = (nb + 255) / 256;
                        for (int b = 0; b < nb; b++)
                            dst[b] = offset + Unsafe.ReadUnaligned<float>(ref Unsafe.AsRef(in src[4 + 4 * (b / 256)])) * (sbyte)src[4 + 4 * ndq + b];
                    }
                }
                break;
            }
            default: throw new InvalidOperationException($"{w}: not an integer-dot format");
        }
        return (codes, scales, zeros);
    }

    /// <summary>Whether <paramref name="parts"/> can be stacked into one matrix: same integer-dot format and width.</summary>
    public static bool CanStack(IReadOnlyList<WeightMatrix> parts)
    {
        if (parts.Count < 2) return false;
        var kind = KernelFor(parts[0].Format, parts[0].Cols);
        if (kind is not (GpuKernelKind.Q8_0 or GpuKernelKind.Q4_0 or GpuKernelKind.Q4_K or GpuKernelKind.Q5_K or GpuKernelKind.Q6_K or GpuKernelKind.Int4
            or GpuKernelKind.Int8 or GpuKernelKind.Codebook)) return false;
        return parts.All(p => p.Format.Name == parts[0].Format.Name && p.Cols == parts[0].Cols && p.Format.RowBytes(p.Cols) == parts[0].RowBytes);
    }

    /// <summary>
    /// Uploads <paramref name="parts"/> (see <see cref="CanStack"/>) as one matrix whose rows are the parts' rows in order, so
    /// one GEMV launch computes all of them (q/k/v; gate/up for the fused SwiGLU kernel); also returns each part as a view
    /// (its row range, not owning memory) for launches that want one part.
    /// </summary>
    public static (GpuMatrix Stacked, GpuMatrix[] Parts) UploadStacked(CudaDevice device, string name, IReadOnlyList<WeightMatrix> parts)
    {
        if (!CanStack(parts)) throw new ArgumentException($"{name}: parts differ in format or width, or have no integer-dot kernel");
        var (host, mat, views, read) = HostStacked(parts);
        var buffer = device.Allocate(host.Length);
        device.Upload<byte>(host, buffer.Pointer);
        var kind = KernelFor(parts[0].Format, parts[0].Cols)!.Value;
        int rows = parts.Sum(p => p.Rows);
        var stacked = new GpuMatrix(name, parts[0].Format, rows, parts[0].Cols, parts.Sum(p => p.ByteCount), kind, buffer, Relocate(mat, buffer.Pointer),
            false, buffer.Bytes, buffer.Capacity);
        var result = new GpuMatrix[parts.Count];
        for (int i = 0; i < parts.Count; i++)
            result[i] = new GpuMatrix(parts[i].Name, parts[i].Format, parts[i].Rows, parts[i].Cols, parts[i].ByteCount, kind, null,
                Relocate(views[i], buffer.Pointer), false, read[i], buffer.Capacity * parts[i].Rows / rows);
        return (stacked, result);
    }

    private static GpuMat Relocate(GpuMat m, ulong basePointer)
    {
        m.Q += basePointer;
        m.S += basePointer;
        if (m.Z != 0) m.Z += basePointer;
        return m;
    }

    /// <summary>
    /// The bytes <see cref="UploadStacked"/> copies to the device: every part's codes, then (16-byte aligned) every part's
    /// scales, then any zero points, rows in order; the stacked kernel argument and one per part (its row range), with
    /// addresses relative to the bytes (<c>Z</c> 0 when there are no zero points), and the bytes each part reads.
    /// </summary>
    internal static (byte[] Host, GpuMat Stacked, GpuMat[] Parts, long[] ReadBytes) HostStacked(IReadOnlyList<WeightMatrix> parts)
    {
        if (!CanStack(parts)) throw new ArgumentException("parts differ in format or width, or have no integer-dot kernel");
        var mats = new GpuMat[parts.Count];
        var kind = KernelFor(parts[0].Format, parts[0].Cols);
        for (int i = 0; i < parts.Count; i++) mats[i].Cols = parts[i].Cols;
        var layouts = new (byte[] Codes, byte[] Scales, byte[]? Zeros)[parts.Count];
        for (int i = 0; i < parts.Count; i++) layouts[i] = DotLayout(parts[i], ref mats[i]);
        long codes = layouts.Sum(l => (long)l.Codes.Length), scales = layouts.Sum(l => (long)l.Scales.Length);
        long zeros = layouts.Sum(l => (long)(l.Zeros?.Length ?? 0));
        long qBytes = Align16(codes), zOffset = qBytes + Align16(scales);
        var host = new byte[zOffset + zeros];
        long c = 0, s = 0, z = 0;
        foreach (var l in layouts)
        {
            l.Codes.CopyTo(host, c);
            l.Scales.CopyTo(host, qBytes + s);
            l.Zeros?.CopyTo(host, zOffset + z);
            c += l.Codes.Length; s += l.Scales.Length; z += l.Zeros?.Length ?? 0;
        }
        var mat = mats[0];
        mat.Q = 0;
        mat.S = (ulong)qBytes;
        mat.Z = zeros > 0 ? (ulong)zOffset : 0;
        var views = new GpuMat[parts.Count];
        var read = new long[parts.Count];
        long r0 = 0;
        for (int i = 0; i < parts.Count; i++)
        {
            var v = mat;
            v.Q += (ulong)(r0 * mat.QStride);
            v.S += (ulong)(r0 * mat.SStride);
            // Zero points are per row; the codebook table (every part's is the same, same format) is shared.
            if (v.Z != 0 && kind != GpuKernelKind.Codebook) v.Z += (ulong)(r0 * (mat.SStride / 4));
            views[i] = v;
            read[i] = layouts[i].Codes.Length + layouts[i].Scales.Length + (layouts[i].Zeros?.Length ?? 0);
            r0 += parts[i].Rows;
        }
        return (host, mat, views, read);
    }

    /// <inheritdoc />
    public void Dispose() => _buffer?.Dispose();

    /// <inheritdoc />
    public override string ToString() => $"{Name} [{Rows}×{Cols}] {Format} → {Kind}{(Dequantized ? " (dequantized)" : "")}";
}
