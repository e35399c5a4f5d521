// Fused dequantize-GEMV kernels: y[b][r] (+)= sum_c W[r][c] * x[b][c] for rows r and up to NB activation vectors b.
// One warp per weight row; the 32 lanes stride over the row's "units" (a block or part of a block, 16-byte aligned),
// dequantize in registers and multiply with F32 activations, then reduce across the warp. Weights are read exactly once
// per call whatever the batch, so a decode step is bound by weight bandwidth. Activation rows are zero-padded to a
// multiple of 256 elements, so units that run past the matrix width read zeros.

// Programmatic dependent launch (Hopper and newer): every kernel first waits until the kernel before it on the stream has
// finished and its writes are visible, then lets the next kernel be scheduled while it runs, so launch latency overlaps
// the previous kernel's tail. Both are no-ops for a normal launch and are compiled out before sm_90.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define PDL_ENTER() do { asm volatile("griddepcontrol.wait;" ::: "memory"); asm volatile("griddepcontrol.launch_dependents;" ::: "memory"); } while (0)
#else
#define PDL_ENTER() do { } while (0)
#endif

typedef unsigned char u8;
typedef signed char i8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

__device__ __forceinline__ float h2f(u16 h)
{
    float f;
    asm("{ .reg .f16 t; mov.b16 t, %1; cvt.f32.f16 %0, t; }" : "=f"(f) : "h"(h));
    return f;
}

// Asks L2 for the first 8 KB of a weight row (one 128-byte line per lane and round) without holding registers: issued
// before PDL_ENTER, since no kernel before this one writes weights, so the row's DRAM latency overlaps the previous
// kernel's tail under programmatic launch.
__device__ __forceinline__ void prefetch_row(const u8* p, long long bytes)
{
    int lane = threadIdx.x & 31;
    long long end = bytes < 8192 ? bytes : 8192;
    for (long long o = lane * 128; o < end; o += 32 * 128) asm volatile("prefetch.global.L2 [%0];" :: "l"(p + o));
}

__device__ __forceinline__ float warp_sum(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ uint4 ld16(const u8* p) { return __ldg(reinterpret_cast<const uint4*>(p)); }
__device__ __forceinline__ float4 ldx(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ u32 byte_of(const uint4& v, int j)
{
    u32 w = j < 4 ? v.x : j < 8 ? v.y : j < 12 ? v.z : v.w;
    return (w >> (8 * (j & 3))) & 0xffu;
}

struct Mat
{
    const u8* q;      // per-row codes (row r at q + r * qStride)
    const u8* s;      // per-row scales (row r at s + r * sStride), format-specific
    const u8* z;      // per-row zero points (IntGroup asymmetric) or null
    long long qStride;
    long long sStride;
    int cols;         // logical width
    int units;        // units per row
    int group;        // IntGroup: elements per group; Codebook: unused
};

// ---- per-format unit kernels: add this unit's contribution for each batch entry into acc[b] ----

// F32 rows (padded to a multiple of 8 elements): unit = 8 floats.
template <int NB> __device__ __forceinline__ void unit_f32(const Mat& m, int row, int u, const float* x, int xs, int nb, float* acc)
{
    const u8* p = m.q + row * m.qStride + u * 32;
    uint4 a = ld16(p), c = ld16(p + 16);
    float w[8] = { __uint_as_float(a.x), __uint_as_float(a.y), __uint_as_float(a.z), __uint_as_float(a.w),
                   __uint_as_float(c.x), __uint_as_float(c.y), __uint_as_float(c.z), __uint_as_float(c.w) };
#pragma unroll
    for (int b = 0; b < NB; b++)
    {
        if (b >= nb) break;
        const float* xb = x + b * xs + u * 8;
        float4 x0 = ldx(xb), x1 = ldx(xb + 4);
        acc[b] += w[0] * x0.x + w[1] * x0.y + w[2] * x0.z + w[3] * x0.w + w[4] * x1.x + w[5] * x1.y + w[6] * x1.z + w[7] * x1.w;
    }
}

// F16 rows (padded to a multiple of 8): unit = 8 halves.
template <int NB> __device__ __forceinline__ void unit_f16(const Mat& m, int row, int u, const float* x, int xs, int nb, float* acc)
{
    uint4 a = ld16(m.q + row * m.qStride + u * 16);
    u32 ws[4] = { a.x, a.y, a.z, a.w };
    float w[8];
#pragma unroll
    for (int i = 0; i < 4; i++) { w[2 * i] = h2f((u16)(ws[i] & 0xffff)); w[2 * i + 1] = h2f((u16)(ws[i] >> 16)); }
#pragma unroll
    for (int b = 0; b < NB; b++)
    {
        if (b >= nb) break;
        const float* xb = x + b * xs + u * 8;
        float4 x0 = ldx(xb), x1 = ldx(xb + 4);
        acc[b] += w[0] * x0.x + w[1] * x0.y + w[2] * x0.z + w[3] * x0.w + w[4] * x1.x + w[5] * x1.y + w[6] * x1.z + w[7] * x1.w;
    }
}

// Q8_0 split layout: codes [rows][nb * 32] int8, scales [rows][nb] fp16. Unit = one block of 32.
template <int NB> __device__ __forceinline__ void unit_q8_0(const Mat& m, int row, int u, const float* x, int xs, int nb, float* acc)
{
    const u8* p = m.q + row * m.qStride + u * 32;
    uint4 a = ld16(p), c = ld16(p + 16);
    float d = h2f(reinterpret_cast<const u16*>(m.s + row * m.sStride)[u]);
    float w[32];
#pragma unroll
    for (int j = 0; j < 16; j++) { w[j] = (float)(i8)byte_of(a, j); w[16 + j] = (float)(i8)byte_of(c, j); }
#pragma unroll
    for (int b = 0; b < NB; b++)
    {
        if (b >= nb) break;
        const float* xb = x + b * xs + u * 32;
        float s = 0.f;
#pragma unroll
        for (int j = 0; j < 32; j += 4) { float4 v = ldx(xb + j); s += w[j] * v.x + w[j + 1] * v.y + w[j + 2] * v.z + w[j + 3] * v.w; }
        acc[b] += d * s;
    }
}

// Q4_0 split layout: codes [rows][nb * 16] (byte j: element j low nibble, element j + 16 high nibble), scales fp16.
template <int NB> __device__ __forceinline__ void unit_q4_0(const Mat& m, int row, int u, const float* x, int xs, int nb, float* acc)
{
    uint4 a = ld16(m.q + row * m.qStride + u * 16);
    float d = h2f(reinterpret_cast<const u16*>(m.s + row * m.sStride)[u]);
    float w[32];
#pragma unroll
    for (int j = 0; j < 16; j++) { u32 v = byte_of(a, j); w[j] = (float)((int)(v & 15) - 8); w[16 + j] = (float)((int)(v >> 4) - 8); }
#pragma unroll
    for (int b = 0; b < NB; b++)
    {
        if (b >= nb) break;
        const float* xb = x + b * xs + u * 32;
        float s = 0.f;
#pragma unroll
        for (int j = 0; j < 32; j += 4) { float4 v = ldx(xb + j); s += w[j] * v.x + w[j + 1] * v.y + w[j + 2] * v.z + w[j + 3] * v.w; }
        acc[b] += d * s;
    }
}

// Q4_K sub-block k (0..7) of a super-block header (x: fp16 d | fp16 dmin << 16; y, z, w: the 12 packed scale bytes
// q[0..11]): scale = d · sc_k and offset = dmin · m_k, where for k < 4 sc = q[k] & 63, m = q[k + 4] & 63, else
// sc = (q[k + 4] & 15) | (q[k − 4] >> 6) << 4 and m = (q[k + 4] >> 4) | (q[k] >> 6) << 4 — ggml's get_scale_min_k4, with
// bytes taken by shifts so nothing goes through local memory.
__device__ __forceinline__ void q4k_scale(const uint4& hd, int k, float& scale, float& offset)
{
    int sh = 8 * (k & 3);
    u32 lo = (hd.y >> sh) & 255u, mid = (hd.z >> sh) & 255u, hi = (hd.w >> sh) & 255u;
    u32 sc = k < 4 ? lo & 63u : (hi & 15u) | ((lo >> 6) << 4);
    u32 mn = k < 4 ? mid & 63u : (hi >> 4) | ((mid >> 6) << 4);
    scale = h2f((u16)(hd.x & 0xffffu)) * (float)sc;
    offset = h2f((u16)(hd.x >> 16)) * (float)mn;
}

// Q4_K repacked at upload: codes [rows][nsb · 8] pieces of 16 bytes, piece u = sub-block u % 8 of super-block u / 8 (byte j:
// element 32u + j low nibble, 32u + 16 + j high nibble), headers [rows][nsb] × 16 bytes (d, dmin, 12 scale bytes) at m.s.
// Unit = one 32-element sub-block: w = d · sc · code − dmin · m.
template <int NB> __device__ __forceinline__ void unit_q4_k(const Mat& m, int row, int u, const float* x, int xs, int nb, float* acc)
{
    uint4 a = ld16(m.q + row * m.qStride + u * 16);
    uint4 hd = ld16(m.s + row * m.sStride + (u >> 3) * 16);
    float scale, offset;
    q4k_scale(hd, u & 7, scale, offset);
    float w[32];
#pragma unroll
    for (int j = 0; j < 16; j++) { u32 v = byte_of(a, j); w[j] = scale * (float)(v & 15) - offset; w[16 + j] = scale * (float)(v >> 4) - offset; }
#pragma unroll
    for (int b = 0; b < NB; b++)
    {
        if (b >= nb) break;
        const float* xb = x + b * xs + u * 32;
        float t = 0.f;
#pragma unroll
        for (int j = 0; j < 32; j += 4) { float4 v = ldx(xb + j); t += w[j] * v.x + w[j + 1] * v.y + w[j + 2] * v.z + w[j + 3] * v.w; }
        acc[b] += t;
    }
}

// Code e (0..31) of a repacked Q5_K piece (Q5KRepack): low bits from piece byte e mod 16 (low nibble for e < 16, else
// high), fifth bit from the piece's word f: byte (e mod 16) mod 4, bit ⌊(e mod 16) / 4⌋ (+ 4 for e ≥ 16).
__device__ __forceinline__ u32 q5k_code(const uint4& a, u32 f, int e)
{
    int i = e & 15, h = e >> 4;
    return ((byte_of(a, i) >> (4 * h)) & 15u) | (((f >> (8 * (i & 3) + 4 * h + (i >> 2))) & 1u) << 4);
}

// Code e (0..31) of a repacked Q6_K piece (Q6KRepack), minus 32: low bits from piece byte i = e mod 16 as for Q5_K, high
// part from the piece's 8-byte word hb: half ⌊i / 8⌋, byte i mod 4, bits 4 ⌊i / 4⌋ mod 2 + 2 (e ≥ 16) .. + 1.
__device__ __forceinline__ int q6k_code(const uint4& a, const uint2& hb, int e)
{
    int i = e & 15, h = e >> 4, t = i >> 2;
    u32 w = t < 2 ? hb.x : hb.y;
    return (int)(((byte_of(a, i) >> (4 * h)) & 15u) | (((w >> (8 * (i & 3) + 4 * (t & 1) + 2 * h)) & 3u) << 4)) - 32;
}

// Q5_K repacked at upload (Q5KRepack): row codes = units pieces of 16 bytes then units fifth-bit words of 4 bytes, headers
// [rows][nsb] × 16 bytes at m.s. Unit = one 32-element piece: w = d · sc · q − dmin · m (q4k_scale).
template <int NB> __device__ __forceinline__ void unit_q5_k(const Mat& m, int row, int u, const float* x, int xs, int nb, float* acc)
{
    const u8* base = m.q + row * m.qStride;
    uint4 a = ld16(base + u * 16);
    u32 f = __ldg(reinterpret_cast<const u32*>(base + (long long)m.units * 16) + u);
    float scale, offset;
    q4k_scale(ld16(m.s + row * m.sStride + (u >> 3) * 16), u & 7, scale, offset);
    float w[32];
#pragma unroll
    for (int j = 0; j < 32; j++) w[j] = scale * (float)q5k_code(a, f, j) - offset;
#pragma unroll
    for (int b = 0; b < NB; b++)
    {
        if (b >= nb) break;
        const float* xb = x + b * xs + u * 32;
        float t = 0.f;
#pragma unroll
        for (int j = 0; j < 32; j += 4) { float4 v = ldx(xb + j); t += w[j] * v.x + w[j + 1] * v.y + w[j + 2] * v.z + w[j + 3] * v.w; }
        acc[b] += t;
    }
}

// Q6_K repacked at upload (Q6KRepack): row codes = units pieces of 16 bytes then units high-part words of 8 bytes; row
// scales = units · 2 int8 sub-block scales then nsb fp16 d at m.s. Unit = one 32-element piece: w = d · sc[2u + e / 16] · (q − 32).
template <int NB> __device__ __forceinline__ void unit_q6_k(const Mat& m, int row, int u, const float* x, int xs, int nb, float* acc)
{
    const u8* base = m.q + row * m.qStride;
    const u8* srow = m.s + row * m.sStride;
    uint4 a = ld16(base + u * 16);
    uint2 hb = __ldg(reinterpret_cast<const uint2*>(base + (long long)m.units * 16) + u);
    u32 sp = __ldg(reinterpret_cast<const u16*>(srow) + u);
    float d = h2f(__ldg(reinterpret_cast<const u16*>(srow + m.units * 2) + (u >> 3)));
    float s0 = d * (float)(i8)(sp & 255u), s1 = d * (float)(i8)(sp >> 8);
    float w[32];
#pragma unroll
    for (int j = 0; j < 32; j++) w[j] = (j < 16 ? s0 : s1) * (float)q6k_code(a, hb, j);
#pragma unroll
    for (int b = 0; b < NB; b++)
    {
        if (b >= nb) break;
        const float* xb = x + b * xs + u * 32;
        float t = 0.f;
#pragma unroll
        for (int j = 0; j < 32; j += 4) { float4 v = ldx(xb + j); t += w[j] * v.x + w[j + 1] * v.y + w[j + 2] * v.z + w[j + 3] * v.w; }
        acc[b] += t;
    }
}

// IntGroup 4-bit split layout: codes [rows][chunks * 16] (byte j: code j low nibble, code j + 16 high nibble), scales
// f32 [rows][ng], zero points u8 [rows][ng] or null (symmetric: 8). Unit = one 32-code chunk, inside one group.
template <int NB> __device__ __forceinline__ void unit_int4(const Mat& m, int row, int u, const float* x, int xs, int nb, float* acc)
{
    uint4 a = ld16(m.q + row * m.qStride + u * 16);
    int g = (u * 32) / m.group;
    float s = reinterpret_cast<const float*>(m.s + row * m.sStride)[g];
    float z = m.z ? (float)m.z[row * (m.sStride / 4) + g] : 8.f;
    float w[32];
#pragma unroll
    for (int j = 0; j < 16; j++) { u32 v = byte_of(a, j); w[j] = (float)(v & 15) - z; w[16 + j] = (float)(v >> 4) - z; }
#pragma unroll
    for (int b = 0; b < NB; b++)
    {
        if (b >= nb) break;
        const float* xb = x + b * xs + u * 32;
        float t = 0.f;
#pragma unroll
        for (int j = 0; j < 32; j += 4) { float4 v = ldx(xb + j); t += w[j] * v.x + w[j + 1] * v.y + w[j + 2] * v.z + w[j + 3] * v.w; }
        acc[b] += s * t;
    }
}

// IntGroup 8-bit: codes [rows][chunks * 16] one byte each, zero point 128 unless given. Unit = 16 codes.
template <int NB> __device__ __forceinline__ void unit_int8(const Mat& m, int row, int u, const float* x, int xs, int nb, float* acc)
{
    uint4 a = ld16(m.q + row * m.qStride + u * 16);
    int g = (u * 16) / m.group;
    float s = reinterpret_cast<const float*>(m.s + row * m.sStride)[g];
    float z = m.z ? (float)m.z[row * (m.sStride / 4) + g] : 128.f;
    float w[16];
#pragma unroll
    for (int j = 0; j < 16; j++) w[j] = (float)byte_of(a, j) - z;
#pragma unroll
    for (int b = 0; b < NB; b++)
    {
        if (b >= nb) break;
        const float* xb = x + b * xs + u * 16;
        float t = 0.f;
#pragma unroll
        for (int j = 0; j < 16; j += 4) { float4 v = ldx(xb + j); t += w[j] * v.x + w[j + 1] * v.y + w[j + 2] * v.z + w[j + 3] * v.w; }
        acc[b] += s * t;
    }
}

// NF4 / FP4 codebook split layout: codes [rows][nb * 32] (byte j: element j low nibble, element j + 32 high nibble),
// absmax f32 [rows][nb]; the 16 code values arrive in shared memory. Unit = one block of 64.
template <int NB> __device__ __forceinline__ void unit_nf4(const Mat& m, int row, int u, const float* x, int xs, int nb, float* acc, const float* lut)
{
    const u8* p = m.q + row * m.qStride + u * 32;
    uint4 a = ld16(p), c = ld16(p + 16);
    float s = reinterpret_cast<const float*>(m.s + row * m.sStride)[u];
    float lo[32], hi[32];
#pragma unroll
    for (int j = 0; j < 16; j++)
    {
        u32 v0 = byte_of(a, j), v1 = byte_of(c, j);
        lo[j] = lut[v0 & 15]; hi[j] = lut[v0 >> 4];
        lo[16 + j] = lut[v1 & 15]; hi[16 + j] = lut[v1 >> 4];
    }
#pragma unroll
    for (int b = 0; b < NB; b++)
    {
        if (b >= nb) break;
        const float* xb = x + b * xs + u * 64;
        float t = 0.f;
#pragma unroll
        for (int j = 0; j < 32; j += 4)
        {
            float4 v = ldx(xb + j), h = ldx(xb + 32 + j);
            t += lo[j] * v.x + lo[j + 1] * v.y + lo[j + 2] * v.z + lo[j + 3] * v.w;
            t += hi[j] * h.x + hi[j + 1] * h.y + hi[j + 2] * h.z + hi[j + 3] * h.w;
        }
        acc[b] += s * t;
    }
}

// ---- the kernels: one warp per row, blockDim.x / 32 rows per block; add != 0 accumulates into y (residual add) ----

#define GEMV_FINISH()                                                                   \
    _Pragma("unroll") for (int b = 0; b < NB; b++) acc[b] = warp_sum(acc[b]);          \
    if (lane == 0)                                                                      \
    {                                                                                   \
        _Pragma("unroll") for (int b = 0; b < NB; b++)                                  \
        {                                                                               \
            if (b >= nb) break;                                                         \
            float* dst = y + (long long)b * ys + row;                                   \
            *dst = add ? *dst + acc[b] : acc[b];                                        \
        }                                                                               \
    }

#define DEFINE_GEMV(NAME, UNIT)                                                                                       \
    template <int NB> __device__ void NAME##_body(Mat m, int rows, const float* x, int xs, float* y, int ys, int nb, int add) \
    {                                                                                                                 \
        int lane = threadIdx.x & 31;                                                                                  \
        int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);                                               \
        if (row < rows) prefetch_row(m.q + row * m.qStride, m.qStride);                                               \
        PDL_ENTER();                                                                                                  \
        if (row >= rows) return;                                                                                      \
        float acc[NB];                                                                                                \
        _Pragma("unroll") for (int b = 0; b < NB; b++) acc[b] = 0.f;                                                  \
        for (int u = lane; u < m.units; u += 32) UNIT<NB>(m, row, u, x, xs, nb, acc);                                 \
        GEMV_FINISH()                                                                                                 \
    }                                                                                                                 \
    extern "C" __global__ void NAME##_1(Mat m, int rows, const float* x, int xs, float* y, int ys, int nb, int add) { NAME##_body<1>(m, rows, x, xs, y, ys, nb, add); } \
    extern "C" __global__ void NAME##_4(Mat m, int rows, const float* x, int xs, float* y, int ys, int nb, int add) { NAME##_body<4>(m, rows, x, xs, y, ys, nb, add); } \
    extern "C" __global__ void NAME##_16(Mat m, int rows, const float* x, int xs, float* y, int ys, int nb, int add) { NAME##_body<16>(m, rows, x, xs, y, ys, nb, add); }

DEFINE_GEMV(gemv_f32, unit_f32)
DEFINE_GEMV(gemv_f16, unit_f16)
DEFINE_GEMV(gemv_q8_0, unit_q8_0)
DEFINE_GEMV(gemv_q4_0, unit_q4_0)
DEFINE_GEMV(gemv_q4_k, unit_q4_k)
DEFINE_GEMV(gemv_q5_k, unit_q5_k)
DEFINE_GEMV(gemv_q6_k, unit_q6_k)
DEFINE_GEMV(gemv_int4, unit_int4)
DEFINE_GEMV(gemv_int8, unit_int8)

template <int NB> __device__ void gemv_nf4_body(Mat m, int rows, const float* x, int xs, float* y, int ys, int nb, int add, const float* lutg)
{
    int lane = threadIdx.x & 31;
    int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row < rows) prefetch_row(m.q + row * m.qStride, m.qStride);
    PDL_ENTER();
    __shared__ float lut[16];
    if (threadIdx.x < 16) lut[threadIdx.x] = lutg[threadIdx.x];
    __syncthreads();
    if (row >= rows) return;
    float acc[NB];
#pragma unroll
    for (int b = 0; b < NB; b++) acc[b] = 0.f;
    for (int u = lane; u < m.units; u += 32) unit_nf4<NB>(m, row, u, x, xs, nb, acc, lut);
    GEMV_FINISH()
}
extern "C" __global__ void gemv_nf4_1(Mat m, int rows, const float* x, int xs, float* y, int ys, int nb, int add, const float* lut) { gemv_nf4_body<1>(m, rows, x, xs, y, ys, nb, add, lut); }
extern "C" __global__ void gemv_nf4_4(Mat m, int rows, const float* x, int xs, float* y, int ys, int nb, int add, const float* lut) { gemv_nf4_body<4>(m, rows, x, xs, y, ys, nb, add, lut); }
extern "C" __global__ void gemv_nf4_16(Mat m, int rows, const float* x, int xs, float* y, int ys, int nb, int add, const float* lut) { gemv_nf4_body<16>(m, rows, x, xs, y, ys, nb, add, lut); }
