using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using QuantServe.Engine.Kernels.Cpu;

namespace QuantServe.Engine.Quantization.Formats;

/// <summary>
/// The inner products shared by QuantServe's own formats (intB groups, NF4/FP4, LLM.int8), one per instruction-set path.
/// Integer inner products are exact on every path; the scaled float sums (int groups, LUT products) are added in a
/// path-specific order, so paths agree to float rounding (LLM.int8's single integer row sum agrees exactly).
/// </summary>
internal static unsafe class RtnKernels
{
    /// <summary>Whether this CPU runs <paramref name="path"/> for these kernels.</summary>
    public static bool IsSupported(SimdPath path) => path switch
    {
        SimdPath.Scalar => true,
        SimdPath.V128 => Vector128.IsHardwareAccelerated,
        SimdPath.V256 => Avx2.IsSupported && Fma.IsSupported,
        SimdPath.V512 => Avx512BW.IsSupported && Avx512F.IsSupported,
        _ => false,
    };

    /// <summary>The widest supported path.</summary>
    public static readonly SimdPath Best =
        IsSupported(SimdPath.V512) ? SimdPath.V512
        : IsSupported(SimdPath.V256) ? SimdPath.V256
        : IsSupported(SimdPath.V128) ? SimdPath.V128
        : SimdPath.Scalar;

    public static SimdPath Check(SimdPath path) =>
        IsSupported(path) ? path : throw new PlatformNotSupportedException($"kernel path {path} is not supported by this CPU");

    /// <summary>Exact <c>Σ_{j&lt;32} w[j]·a[j]</c> of 32 weight codes (unsigned when <paramref name="signedW"/> is false,
    /// else two's complement) and 32 signed activation codes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Dot32(byte* w, sbyte* a, bool signedW, SimdPath path)
    {
        switch (path)
        {
            case SimdPath.V512:
            {
                var wv = signedW ? Avx512BW.ConvertToVector512Int16(Vector256.Load((sbyte*)w)) : Avx512BW.ConvertToVector512Int16(Vector256.Load(w)).AsInt16();
                var av = Avx512BW.ConvertToVector512Int16(Vector256.Load(a));
                return Vector512.Sum(Avx512BW.MultiplyAddAdjacent(wv, av));
            }
            case SimdPath.V256:
            {
                var w0 = signedW ? Avx2.ConvertToVector256Int16((sbyte*)w) : Avx2.ConvertToVector256Int16(w).AsInt16();
                var w1 = signedW ? Avx2.ConvertToVector256Int16((sbyte*)w + 16) : Avx2.ConvertToVector256Int16(w + 16).AsInt16();
                var s = Avx2.MultiplyAddAdjacent(w0, Avx2.ConvertToVector256Int16(a))
                      + Avx2.MultiplyAddAdjacent(w1, Avx2.ConvertToVector256Int16(a + 16));
                return Vector256.Sum(s);
            }
            case SimdPath.V128:
            {
                var acc = Vector128<int>.Zero;
                for (int k = 0; k < 32; k += 16)
                {
                    var av = Vector128.Load(a + k);
                    var (al, ah) = Vector128.Widen(av);
                    Vector128<short> wl, wh;
                    if (signedW) (wl, wh) = Vector128.Widen(Vector128.Load((sbyte*)w + k));
                    else
                    {
                        var (ul, uh) = Vector128.Widen(Vector128.Load(w + k));
                        (wl, wh) = (ul.AsInt16(), uh.AsInt16());
                    }
                    var (p0, p1) = Vector128.Widen(wl * al);
                    var (p2, p3) = Vector128.Widen(wh * ah);
                    acc += p0 + p1 + p2 + p3;
                }
                return Vector128.Sum(acc);
            }
            default:
            {
                int s = 0;
                if (signedW) for (int j = 0; j < 32; j++) s += ((sbyte*)w)[j] * a[j];
                else for (int j = 0; j < 32; j++) s += w[j] * a[j];
                return s;
            }
        }
    }

    /// <summary>Exact <c>Σ_{j&lt;32} (u[j] − z)·a[j]</c> (scalar and Vector128 paths of <see cref="GroupDotU8"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int DotZ32(byte* u, sbyte* a, short z, SimdPath path)
    {
        if (path == SimdPath.Scalar)
        {
            int s = 0;
            for (int j = 0; j < 32; j++) s += (u[j] - z) * a[j];
            return s;
        }
        var acc = Vector128<int>.Zero;
        var zv = Vector128.Create(z);
        for (int k = 0; k < 32; k += 16)
        {
            var (al, ah) = Vector128.Widen(Vector128.Load(a + k));
            var (ul, uh) = Vector128.Widen(Vector128.Load(u + k));
            var (p0, p1) = Vector128.Widen((ul.AsInt16() - zv) * al);
            var (p2, p3) = Vector128.Widen((uh.AsInt16() - zv) * ah);
            acc += p0 + p1 + p2 + p3;
        }
        return Vector128.Sum(acc);
    }

    /// <summary>
    /// <c>Σ_b d[b] · Σ_{j&lt;32} (u[32b + j] − z)·a[32b + j]</c> over <paramref name="subBlocks"/> sub-blocks of unsigned codes
    /// and signed activations: the zero point is subtracted in 16-bit lanes so each inner sum is exact (no float
    /// cancellation), the scaled sums accumulated in float lanes (one horizontal sum).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float GroupDotU8(byte* u, sbyte* a, float* d, int subBlocks, short z, SimdPath path)
    {
        switch (path)
        {
            case SimdPath.V512:
            {
                var acc = Vector512<float>.Zero;
                var zv = Vector512.Create(z);
                for (int b = 0; b < subBlocks; b++)
                {
                    var p = Avx512BW.MultiplyAddAdjacent(Avx512BW.ConvertToVector512Int16(Vector256.Load(u + 32 * b)).AsInt16() - zv,
                        Avx512BW.ConvertToVector512Int16(Vector256.Load(a + 32 * b)));
                    acc = Avx512F.FusedMultiplyAdd(Vector512.ConvertToSingle(p), Vector512.Create(d[b]), acc);
                }
                return Vector512.Sum(acc);
            }
            case SimdPath.V256:
            {
                var acc = Vector256<float>.Zero;
                var zv = Vector256.Create(z);
                for (int b = 0; b < subBlocks; b++)
                {
                    byte* ub = u + 32 * b;
                    sbyte* ab = a + 32 * b;
                    var p = Avx2.MultiplyAddAdjacent(Avx2.ConvertToVector256Int16(ub).AsInt16() - zv, Avx2.ConvertToVector256Int16(ab))
                          + Avx2.MultiplyAddAdjacent(Avx2.ConvertToVector256Int16(ub + 16).AsInt16() - zv, Avx2.ConvertToVector256Int16(ab + 16));
                    acc = Fma.MultiplyAdd(Vector256.ConvertToSingle(p), Vector256.Create(d[b]), acc);
                }
                return Vector256.Sum(acc);
            }
            default:
            {
                float acc = 0;
                for (int b = 0; b < subBlocks; b++) acc += d[b] * DotZ32(u + 32 * b, a + 32 * b, z, path);
                return acc;
            }
        }
    }

    /// <summary>Exact <c>Σ_{j&lt;n} w[j]·a[j]</c> of signed int8 weights and activations, <paramref name="n"/> a multiple of 32,
    /// accumulated in integer vector lanes (one horizontal sum per call).</summary>
    public static int DotS8Row(sbyte* w, sbyte* a, int n, SimdPath path)
    {
        switch (path)
        {
            case SimdPath.V512:
            {
                var acc = Vector512<int>.Zero;
                for (int i = 0; i < n; i += 32)
                    acc += Avx512BW.MultiplyAddAdjacent(Avx512BW.ConvertToVector512Int16(Vector256.Load(w + i)), Avx512BW.ConvertToVector512Int16(Vector256.Load(a + i)));
                return Vector512.Sum(acc);
            }
            case SimdPath.V256:
            {
                var acc = Vector256<int>.Zero;
                for (int i = 0; i < n; i += 16)
                    acc += Avx2.MultiplyAddAdjacent(Avx2.ConvertToVector256Int16(w + i), Avx2.ConvertToVector256Int16(a + i));
                return Vector256.Sum(acc);
            }
            default:
            {
                int s = 0;
                for (int i = 0; i < n; i += 32) s += Dot32((byte*)(w + i), a + i, true, path);
                return s;
            }
        }
    }

    /// <summary>
    /// <c>Σ_b scales[b] · Σ_{j&lt;64} lut[code_{b,j}]·x[64b + j]</c> over <paramref name="blocks"/> 4-bit blocks of 32 code
    /// bytes each (layout of <see cref="LutDot64"/>); the vector paths keep one float accumulator for the whole row.
    /// </summary>
    public static float LutDotRow(byte* codes, float* x, float* scales, int blocks, float* lut, SimdPath path)
    {
        switch (path)
        {
            case SimdPath.V512:
            {
                var table = Vector512.Load(lut);
                var m = Vector512.Create(15);
                var total = Vector512<float>.Zero;
                for (int b = 0; b < blocks; b++)
                {
                    byte* c = codes + b * 32;
                    float* xb = x + b * 64;
                    var i0 = Avx512F.ConvertToVector512Int32(Vector128.Load(c));
                    var i1 = Avx512F.ConvertToVector512Int32(Vector128.Load(c + 16));
                    var acc = Avx512F.PermuteVar16x32(table, i0 & m) * Vector512.Load(xb);
                    acc = Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(table, i1 & m), Vector512.Load(xb + 16), acc);
                    acc = Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(table, Vector512.ShiftRightLogical(i0, 4)), Vector512.Load(xb + 32), acc);
                    acc = Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(table, Vector512.ShiftRightLogical(i1, 4)), Vector512.Load(xb + 48), acc);
                    total = Avx512F.FusedMultiplyAdd(acc, Vector512.Create(scales[b]), total);
                }
                return Vector512.Sum(total);
            }
            case SimdPath.V256:
            {
                var lo = Vector256.Load(lut);
                var hi = Vector256.Load(lut + 8);
                var m = Vector256.Create(15);
                var seven = Vector256.Create(7);
                var total = Vector256<float>.Zero;
                for (int b = 0; b < blocks; b++)
                {
                    byte* c = codes + b * 32;
                    float* xb = x + b * 64;
                    var acc = Vector256<float>.Zero;
                    for (int k = 0; k < 32; k += 8)
                    {
                        var v = Avx2.ConvertToVector256Int32(c + k);
                        var il = v & m;
                        var ih = Vector256.ShiftRightLogical(v, 4);
                        var fl = Avx.BlendVariable(Avx2.PermuteVar8x32(lo, il), Avx2.PermuteVar8x32(hi, il), Avx2.CompareGreaterThan(il, seven).AsSingle());
                        var fh = Avx.BlendVariable(Avx2.PermuteVar8x32(lo, ih), Avx2.PermuteVar8x32(hi, ih), Avx2.CompareGreaterThan(ih, seven).AsSingle());
                        acc = Fma.MultiplyAdd(fl, Vector256.Load(xb + k), acc);
                        acc = Fma.MultiplyAdd(fh, Vector256.Load(xb + 32 + k), acc);
                    }
                    total = Fma.MultiplyAdd(acc, Vector256.Create(scales[b]), total);
                }
                return Vector256.Sum(total);
            }
            default:
            {
                float acc = 0;
                for (int b = 0; b < blocks; b++) acc += scales[b] * LutDot64(codes + b * 32, x + b * 64, lut, path);
                return acc;
            }
        }
    }

    /// <summary>
    /// <c>Σ_{j&lt;64} lut[code_j]·x[j]</c> for one 64-element 4-bit block: <paramref name="codes"/> holds 32 bytes,
    /// byte j carrying element j in its low nibble and element j + 32 in its high nibble.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float LutDot64(byte* codes, float* x, float* lut, SimdPath path)
    {
        switch (path)
        {
            case SimdPath.V512:
            {
                var table = Vector512.Load(lut);
                var m = Vector512.Create(15);
                var i0 = Avx512F.ConvertToVector512Int32(Vector128.Load(codes));
                var i1 = Avx512F.ConvertToVector512Int32(Vector128.Load(codes + 16));
                var acc = Avx512F.PermuteVar16x32(table, i0 & m) * Vector512.Load(x);
                acc = Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(table, i1 & m), Vector512.Load(x + 16), acc);
                acc = Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(table, Vector512.ShiftRightLogical(i0, 4)), Vector512.Load(x + 32), acc);
                acc = Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(table, Vector512.ShiftRightLogical(i1, 4)), Vector512.Load(x + 48), acc);
                return Vector512.Sum(acc);
            }
            case SimdPath.V256:
            {
                var lo = Vector256.Load(lut);
                var hi = Vector256.Load(lut + 8);
                var m = Vector256.Create(15);
                var seven = Vector256.Create(7);
                var acc = Vector256<float>.Zero;
                for (int k = 0; k < 32; k += 8)
                {
                    var v = Avx2.ConvertToVector256Int32(codes + k);
                    var il = v & m;
                    var ih = Vector256.ShiftRightLogical(v, 4);
                    var fl = Avx.BlendVariable(Avx2.PermuteVar8x32(lo, il), Avx2.PermuteVar8x32(hi, il), Avx2.CompareGreaterThan(il, seven).AsSingle());
                    var fh = Avx.BlendVariable(Avx2.PermuteVar8x32(lo, ih), Avx2.PermuteVar8x32(hi, ih), Avx2.CompareGreaterThan(ih, seven).AsSingle());
                    acc = Fma.MultiplyAdd(fl, Vector256.Load(x + k), acc);
                    acc = Fma.MultiplyAdd(fh, Vector256.Load(x + 32 + k), acc);
                }
                return Vector256.Sum(acc);
            }
            case SimdPath.V128:
            {
                float* v = stackalloc float[64];
                for (int j = 0; j < 32; j++)
                {
                    v[j] = lut[codes[j] & 15];
                    v[j + 32] = lut[codes[j] >> 4];
                }
                var acc = Vector128<float>.Zero;
                for (int j = 0; j < 64; j += 4) acc += Vector128.Load(v + j) * Vector128.Load(x + j);
                return Vector128.Sum(acc);
            }
            default:
            {
                float s = 0;
                for (int j = 0; j < 32; j++) s += lut[codes[j] & 15] * x[j];
                for (int j = 0; j < 32; j++) s += lut[codes[j] >> 4] * x[j + 32];
                return s;
            }
        }
    }

    /// <summary>Per-thread scratch of at least <paramref name="bytes"/> bytes (64-byte aligned, zero-filled on growth).</summary>
    public static byte* Scratch(int bytes)
    {
        var s = _scratch;
        if (s == null || s.Length < bytes)
        {
            _scratch = s = GC.AllocateArray<byte>(Math.Max(bytes, 4096) + 64, pinned: true);
        }
        byte* p = (byte*)Unsafe.AsPointer(ref s[0]);
        return (byte*)(((nint)p + 63) & ~(nint)63);
    }

    [ThreadStatic] private static byte[]? _scratch;
}
