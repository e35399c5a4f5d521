using System.Globalization;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Text.RegularExpressions;
using QuantServe.Engine.Kernels.Cpu;
using QuantServe.Engine.Tensors;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>
/// Round-to-nearest B-bit integers (B ∈ {2, 3, 4, 8}) with one scale (and, asymmetric, one zero point) per group of G
/// consecutive weights of a row; the last group of a row is shorter when G does not divide the width. Names:
/// <c>intB</c> / <c>intB-asym</c> (per output channel: one group per row, also written <c>-g0</c>),
/// <c>intB-gG[-asym]</c> (groups of G) and <c>intB-pt[-asym]</c> (one scale for the whole tensor).
/// <para>Quantization, per group (or per tensor): symmetric <c>s = absmax / (2^(B−1) − 1)</c>,
/// <c>q = clamp(round_half_even(x / s), −(2^(B−1) − 1), 2^(B−1) − 1)</c>, stored as the unsigned code
/// <c>u = q + 2^(B−1)</c> with the implicit zero point <c>z = 2^(B−1)</c>; asymmetric (range widened to contain 0)
/// <c>s = (max − min) / (2^B − 1)</c>, <c>z = clamp(round_half_even(−min / s), 0, 2^B − 1)</c>,
/// <c>u = clamp(round_half_even(x / s) + z, 0, 2^B − 1)</c>. Dequantization: <c>x = s · (u − z)</c>; s = 0 for an all-zero group.</para>
/// <para>Row layout: ng float32 scales (ng = number of groups); asymmetric formats then ng zero-point bytes; padding to
/// a multiple of 4; then the codes in chunks of 16-byte planes. B = 8: 16 codes per 16-byte chunk, one per byte.
/// B = 4: 32 codes per chunk, byte j = u[j] | u[j+16] &lt;&lt; 4. B = 2: 64 codes per chunk, byte j = Σ_k u[j+16k] &lt;&lt; 2k.
/// B = 3: 128 codes per 48-byte chunk: two B = 2 chunks of the low two bits of codes 0..63 and 64..127, then 16 bytes
/// whose byte j bit k is the third bit of code 16k + j. Codes past the row's width are 0.</para>
/// <para>Dot product: activations are quantized per sub-block of 32 inside each weight group (the last sub-block of a
/// group may be shorter): <c>d = amax / 127</c>, <c>a = round_half_even(x · 127 / amax)</c>. For group g with sub-blocks b:
/// <c>y += s_g · Σ_b d_b · Σ_j (u_j − z_g)·a_j</c>, the inner sums exact in integers (codes widened to 16 bits and the
/// zero point subtracted before vpmaddwd, so there is no float cancellation; AVX-512 BW / AVX2, Vector128 or scalar); the vector paths sum the scaled sub-block results in float lanes,
/// so they agree with the scalar path to float rounding.</para>
/// </summary>
public sealed unsafe partial class IntGroupFormat : RtnFormat
{
    /// <summary>Creates the format; <paramref name="group"/> 0 means one group per row.</summary>
    public IntGroupFormat(int bits, int group, bool asymmetric, bool perTensor = false)
    {
        if (bits is not (2 or 3 or 4 or 8)) throw new ArgumentOutOfRangeException(nameof(bits), $"{bits}-bit integers are not supported (2, 3, 4 or 8)");
        if (group < 0) throw new ArgumentOutOfRangeException(nameof(group), $"group size {group} is negative");
        if (perTensor && group != 0) throw new ArgumentException("a per-tensor format has no groups", nameof(group));
        Bits = bits;
        Group = group;
        Asymmetric = asymmetric;
        PerTensor = perTensor;
        Name = $"int{bits}" + (perTensor ? "-pt" : group > 0 ? $"-g{group}" : "") + (asymmetric ? "-asym" : "");
        (ChunkElements, ChunkBytes) = bits switch { 8 => (16, 16), 4 => (32, 16), 2 => (64, 16), _ => (128, 48) };
    }

    /// <summary>Bits per weight code.</summary>
    public int Bits { get; }

    /// <summary>Weights per group (0: the whole row).</summary>
    public int Group { get; }

    /// <summary>Whether each group has its own zero point.</summary>
    public bool Asymmetric { get; }

    /// <summary>Whether one scale (and zero point) covers the whole tensor (stored in every row).</summary>
    public bool PerTensor { get; }

    /// <inheritdoc />
    public override string Name { get; }

    private int ChunkElements { get; }
    private int ChunkBytes { get; }
    private int MaxCode => (1 << Bits) - 1;
    private int SymmetricZero => 1 << (Bits - 1);

    [GeneratedRegex(@"^int(?<b>[2348])(?:-g(?<g>\d{1,7})|(?<pt>-pt))?(?<asym>-asym)?$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex NamePattern();

    /// <summary>The format named <paramref name="name"/> (<c>int4-g128</c>, <c>int8-asym</c>, <c>int8-pt</c>, …), or null when the name is not one.</summary>
    public static IntGroupFormat? Parse(string name)
    {
        var m = NamePattern().Match(name);
        if (!m.Success) return null;
        int g = m.Groups["g"].Success ? int.Parse(m.Groups["g"].Value, CultureInfo.InvariantCulture) : 0;
        return new IntGroupFormat(m.Groups["b"].Value[0] - '0', g, m.Groups["asym"].Success, m.Groups["pt"].Success);
    }

    /// <summary>Groups in a row of <paramref name="cols"/>.</summary>
    public int GroupCount(int cols) => cols == 0 ? 0 : Group == 0 ? 1 : (cols + Group - 1) / Group;

    private int GroupLength(int cols) => Group == 0 ? cols : Group;

    private int HeaderBytes(int cols)
    {
        int ng = GroupCount(cols);
        return (ng * 4 + (Asymmetric ? ng : 0) + 3) & ~3;
    }

    private int CodeBytes(int cols) => (cols + ChunkElements - 1) / ChunkElements * ChunkBytes;

    /// <inheritdoc />
    public override long RowBytes(int cols) => HeaderBytes(cols) + CodeBytes(cols);

    /// <summary>Activation sub-blocks (of at most 32) in a row of <paramref name="cols"/>.</summary>
    private int SubBlocks(int cols)
    {
        if (cols == 0) return 0;
        int g = GroupLength(cols);
        int full = cols / g, rest = cols % g;
        return full * ((g + 31) / 32) + (rest + 31) / 32;
    }

    /// <summary>Prepared activation: nsb × 32 int8 codes (zero-padded per sub-block), then nsb float scales d_b.</summary>
    public override int ActivationBytes(int cols) => SubBlocks(cols) * 36;

    /// <inheritdoc />
    public override void PrepareActivation(ReadOnlySpan<float> x, Span<byte> destination)
    {
        int cols = x.Length, nsb = SubBlocks(cols);
        if (destination.Length < nsb * 36) throw new ArgumentException($"{Name}: activation buffer holds {destination.Length} bytes, needs {nsb * 36}");
        var codes = MemoryMarshal.Cast<byte, sbyte>(destination[..(nsb * 32)]);
        var scales = MemoryMarshal.Cast<byte, float>(destination.Slice(nsb * 32, nsb * 4));
        int g = GroupLength(cols), slot = 0;
        for (int start = 0; start < cols; start += g)
        {
            int end = Math.Min(cols, start + g);
            for (int b = start; b < end; b += 32, slot++)
            {
                int len = Math.Min(32, end - b);
                var xb = x.Slice(b, len);
                var qb = codes.Slice(slot * 32, 32);
                float amax = 0;
                foreach (float v in xb) amax = MathF.Max(amax, MathF.Abs(v));
                float id = amax > 0 ? 127f / amax : 0f;
                for (int j = 0; j < len; j++) qb[j] = (sbyte)(int)MathF.Round(xb[j] * id, MidpointRounding.ToEven);
                qb[len..].Clear();
                scales[slot] = amax / 127f;
            }
        }
    }

    /// <inheritdoc />
    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> destination)
    {
        CheckRow(x.Length, destination.Length);
        if (PerTensor)
        {
            var (s, z) = Parameters(x);
            QuantizeRowWith(x, destination, s, z);
        }
        else QuantizeRowWith(x, destination, float.NaN, 0);
    }

    /// <inheritdoc />
    public override void QuantizeMatrix(WeightMatrix source, Span<byte> destination)
    {
        if (!PerTensor) { base.QuantizeMatrix(source, destination); return; }
        long rowBytes = RowBytes(source.Cols);
        if (source.Rows * rowBytes > destination.Length)
            throw new ArgumentException($"{source.Name}: destination holds {destination.Length} bytes, {Name} needs {source.Rows * rowBytes}");
        var row = new float[source.Cols];
        float min = 0, max = 0;
        for (int r = 0; r < source.Rows; r++)
        {
            source.DequantizeRow(r, row);
            foreach (float v in row) { min = MathF.Min(min, v); max = MathF.Max(max, v); }
        }
        var (s, z) = Parameters(min, max);
        for (int r = 0; r < source.Rows; r++)
        {
            source.DequantizeRow(r, row);
            QuantizeRowWith(row, destination.Slice((int)(r * rowBytes), (int)rowBytes), s, z);
        }
    }

    private (float Scale, int Zero) Parameters(ReadOnlySpan<float> x)
    {
        float min = 0, max = 0;
        foreach (float v in x) { min = MathF.Min(min, v); max = MathF.Max(max, v); }
        return Parameters(min, max);
    }

    private (float Scale, int Zero) Parameters(float min, float max)
    {
        if (Asymmetric)
        {
            float s = (max - min) / MaxCode;
            if (!(s > 0)) return (0, 0);
            int z = Math.Clamp((int)MathF.Round(-min / s, MidpointRounding.ToEven), 0, MaxCode);
            return (s, z);
        }
        float amax = MathF.Max(-min, max);
        return (amax / (SymmetricZero - 1), SymmetricZero);
    }

    /// <summary>Quantizes with fixed parameters (per tensor) or, when <paramref name="fixedScale"/> is NaN, per group.</summary>
    private void QuantizeRowWith(ReadOnlySpan<float> x, Span<byte> destination, float fixedScale, int fixedZero)
    {
        int cols = x.Length, ng = GroupCount(cols), g = GroupLength(cols);
        var dst = destination[..(int)RowBytes(cols)];
        dst.Clear();
        var scales = MemoryMarshal.Cast<byte, float>(dst[..(ng * 4)]);
        var u = new byte[(cols + ChunkElements - 1) / ChunkElements * ChunkElements];
        for (int gi = 0; gi < ng; gi++)
        {
            var xg = x.Slice(gi * g, Math.Min(g, cols - gi * g));
            var (s, z) = float.IsNaN(fixedScale) ? Parameters(xg) : (fixedScale, fixedZero);
            scales[gi] = s;
            if (Asymmetric) dst[ng * 4 + gi] = (byte)z;
            float inv = s > 0 ? 1f / s : 0f;
            int lo = Asymmetric ? 0 : 1, hi = MaxCode;
            for (int j = 0; j < xg.Length; j++)
            {
                int code = s > 0 ? (int)MathF.Round(xg[j] * inv, MidpointRounding.ToEven) + z : z;
                u[gi * g + j] = (byte)Math.Clamp(code, lo, hi);
            }
        }
        Pack(u, dst[HeaderBytes(cols)..]);
    }

    /// <summary>
    /// Writes one row from already-quantized values: <paramref name="codes"/> holds the row's unsigned codes u in
    /// [0, 2^B − 1] (one byte each, <c>cols</c> of them), <paramref name="scales"/> one scale per group and, for an
    /// asymmetric format, <paramref name="zeros"/> one zero point per group in [0, 2^B − 1] (ignored when symmetric).
    /// The row then dequantizes to <c>scales[g] · (u − zeros[g])</c> exactly. Used to repack checkpoints quantized
    /// elsewhere (GPTQ, AWQ) into this layout once at load.
    /// </summary>
    public void EncodeRow(ReadOnlySpan<byte> codes, ReadOnlySpan<float> scales, ReadOnlySpan<byte> zeros, Span<byte> destination)
    {
        int cols = codes.Length, ng = GroupCount(cols);
        CheckRow(cols, destination.Length);
        if (scales.Length != ng) throw new ArgumentException($"{Name}: {scales.Length} scales for {ng} groups of a {cols}-wide row");
        if (Asymmetric && zeros.Length != ng) throw new ArgumentException($"{Name}: {zeros.Length} zero points for {ng} groups");
        var dst = destination[..(int)RowBytes(cols)];
        dst.Clear();
        scales.CopyTo(MemoryMarshal.Cast<byte, float>(dst[..(ng * 4)]));
        if (Asymmetric)
            for (int gi = 0; gi < ng; gi++)
            {
                if (zeros[gi] > MaxCode) throw new ArgumentException($"{Name}: zero point {zeros[gi]} exceeds {MaxCode}");
                dst[ng * 4 + gi] = zeros[gi];
            }
        var u = new byte[(cols + ChunkElements - 1) / ChunkElements * ChunkElements];
        for (int j = 0; j < cols; j++)
        {
            if (codes[j] > MaxCode) throw new ArgumentException($"{Name}: code {codes[j]} at column {j} exceeds {MaxCode}");
            u[j] = codes[j];
        }
        Pack(u, dst[HeaderBytes(cols)..]);
    }

    private void Pack(ReadOnlySpan<byte> u, Span<byte> codes)
    {
        int chunks = u.Length / ChunkElements;
        for (int c = 0; c < chunks; c++)
        {
            var e = u.Slice(c * ChunkElements, ChunkElements);
            var d = codes.Slice(c * ChunkBytes, ChunkBytes);
            switch (Bits)
            {
                case 8: e.CopyTo(d); break;
                case 4: for (int j = 0; j < 16; j++) d[j] = (byte)(e[j] | e[j + 16] << 4); break;
                case 2: for (int j = 0; j < 16; j++) d[j] = (byte)(e[j] | e[j + 16] << 2 | e[j + 32] << 4 | e[j + 48] << 6); break;
                default:
                    for (int half = 0; half < 2; half++)
                        for (int j = 0; j < 16; j++)
                        {
                            int o = half * 64;
                            d[half * 16 + j] = (byte)((e[o + j] & 3) | (e[o + j + 16] & 3) << 2 | (e[o + j + 32] & 3) << 4 | (e[o + j + 48] & 3) << 6);
                        }
                    for (int j = 0; j < 16; j++)
                    {
                        int h = 0;
                        for (int k = 0; k < 8; k++) h |= (e[16 * k + j] >> 2) << k;
                        d[32 + j] = (byte)h;
                    }
                    break;
            }
        }
    }

    /// <summary>Expands the packed codes of a row into one byte per code (<see cref="CodeBytes"/> / ChunkBytes chunks).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Unpack(byte* codes, int chunks, byte* u, bool vector)
    {
        if (vector && Bits != 8)
        {
            var m2 = Vector128.Create((byte)3);
            for (int c = 0; c < chunks; c++)
            {
                byte* s = codes + c * ChunkBytes;
                byte* d = u + c * ChunkElements;
                switch (Bits)
                {
                    case 4:
                    {
                        var v = Vector128.Load(s);
                        (v & Vector128.Create((byte)15)).Store(d);
                        Vector128.ShiftRightLogical(v, 4).Store(d + 16);
                        break;
                    }
                    case 2:
                    {
                        var v = Vector128.Load(s);
                        for (int k = 0; k < 4; k++) (Vector128.ShiftRightLogical(v, 2 * k) & m2).Store(d + 16 * k);
                        break;
                    }
                    default:
                    {
                        var h = Vector128.Load(s + 32);
                        var one = Vector128.Create((byte)1);
                        for (int half = 0; half < 2; half++)
                        {
                            var v = Vector128.Load(s + 16 * half);
                            for (int k = 0; k < 4; k++)
                            {
                                int plane = half * 4 + k;
                                var hi = Vector128.ShiftLeft(Vector128.ShiftRightLogical(h, plane) & one, 2);
                                ((Vector128.ShiftRightLogical(v, 2 * k) & m2) | hi).Store(d + 16 * plane);
                            }
                        }
                        break;
                    }
                }
            }
            return;
        }
        for (int c = 0; c < chunks; c++)
        {
            byte* s = codes + c * ChunkBytes;
            byte* d = u + c * ChunkElements;
            switch (Bits)
            {
                case 8: Buffer.MemoryCopy(s, d, 16, 16); break;
                case 4: for (int j = 0; j < 16; j++) { d[j] = (byte)(s[j] & 15); d[j + 16] = (byte)(s[j] >> 4); } break;
                case 2: for (int j = 0; j < 16; j++) for (int k = 0; k < 4; k++) d[j + 16 * k] = (byte)((s[j] >> 2 * k) & 3); break;
                default:
                    for (int half = 0; half < 2; half++)
                        for (int j = 0; j < 16; j++)
                            for (int k = 0; k < 4; k++)
                            {
                                int plane = half * 4 + k;
                                d[16 * plane + j] = (byte)((s[16 * half + j] >> 2 * k) & 3 | ((s[32 + j] >> plane) & 1) << 2);
                            }
                    break;
            }
        }
    }

    /// <inheritdoc />
    public override void DequantizeRow(WeightMatrix w, int row, Span<float> destination)
    {
        CheckDequantize(w, row, destination.Length);
        int cols = w.Cols, ng = GroupCount(cols), g = GroupLength(cols);
        if (cols == 0) return;
        byte* p = w.Data + row * w.RowBytes;
        int chunks = CodeBytes(cols) / ChunkBytes;
        var u = new byte[chunks * ChunkElements];
        fixed (byte* pu = u) Unpack(p + HeaderBytes(cols), chunks, pu, false);
        for (int gi = 0; gi < ng; gi++)
        {
            float s = Unsafe.ReadUnaligned<float>(p + 4 * gi);
            int z = Asymmetric ? p[4 * ng + gi] : SymmetricZero;
            int end = Math.Min(cols, (gi + 1) * g);
            for (int j = gi * g; j < end; j++) destination[j] = s * (u[j] - z);
        }
    }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal override void DotRows(WeightMatrix w, int rowStart, int rowEnd, ReadOnlySpan<byte> activations,
        int activationStride, int batch, Span<float> y, int yStride, SimdPath path)
    {
        RtnKernels.Check(path);
        if (!CheckDot(w, rowStart, rowEnd, activations.Length, activationStride, batch, y.Length, yStride)) return;
        int cols = w.Cols, ng = GroupCount(cols), g = GroupLength(cols), nsb = SubBlocks(cols);
        int header = HeaderBytes(cols);
        int chunks = CodeBytes(cols) / ChunkBytes;
        int uBytes = chunks * ChunkElements;
        byte* u = RtnKernels.Scratch(uBytes + 32);
        new Span<byte>(u + uBytes, 32).Clear();
        bool vector = path != SimdPath.Scalar;
        fixed (byte* act = activations)
        fixed (float* py = y)
        {
            for (int r = rowStart; r < rowEnd; r++)
            {
                byte* p = w.Data + r * w.RowBytes;
                Unpack(p + header, chunks, u, vector);
                for (int b = 0; b < batch; b++)
                {
                    byte* a = act + (long)b * activationStride;
                    float* d = (float*)(a + nsb * 32);
                    float acc = 0;
                    int slot = 0;
                    for (int gi = 0; gi < ng; gi++)
                    {
                        int start = gi * g, end = Math.Min(cols, start + g);
                        int subBlocks = (end - start + 31) / 32;
                        short z = (short)(Asymmetric ? p[4 * ng + gi] : SymmetricZero);
                        float gsum = RtnKernels.GroupDotU8(u + start, (sbyte*)(a + slot * 32), d + slot, subBlocks, z, path);
                        slot += subBlocks;
                        acc += Unsafe.ReadUnaligned<float>(p + 4 * gi) * gsum;
                    }
                    py[(long)b * yStride + r] = acc;
                }
            }
        }
    }
}
