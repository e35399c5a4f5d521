// Integer-dot GEMV for Q8_0, Q4_0, Q4_K and 4-bit IntGroup weights: activations are first quantized per block of 32 to
// int8 (d = amax / 127, q = round_half_even(x / d), and the block's d · Σq kept for zero-point / minimum terms), then
// each 32-element block's dot product is computed exactly in integers with dp4a (4 multiply-adds per instruction) and
// scaled once: Σ_j w_j x_j ≈ d_w · d_x · Σ_j q_w,j q_x,j. Compared with F32 activations this reads a quarter of the
// activation bytes from L1 and needs no int-to-float conversion per weight, so the kernels stay memory-bound.

struct QAct
{
    const i8* q;        // [batch][qs] int8 codes (zero beyond the width)
    const float* d;     // [batch][ds] block scales
    const float* s;     // [batch][ds] block d · Σq
    int qs;             // bytes between batch rows of q
    int ds;             // floats between batch rows of d and s
};

// One block of 32 activations per thread: grid (ceil(blocks / 128), T), 128 threads.
extern "C" __global__ void quantize_q8(const float* x, int xs, int cols, i8* q, int qs, float* d, float* s, int ds)
{
    int blk = blockIdx.x * blockDim.x + threadIdx.x, t = blockIdx.y;
    int nblk = (cols + 31) / 32;
    if (blk >= (qs / 32)) return;
    const float* xb = x + (long long)t * xs + blk * 32;
    float v[32], amax = 0.f;
#pragma unroll
    for (int j = 0; j < 32; j += 4)
    {
        float4 f = blk < nblk ? *reinterpret_cast<const float4*>(xb + j) : make_float4(0.f, 0.f, 0.f, 0.f);
        v[j] = f.x; v[j + 1] = f.y; v[j + 2] = f.z; v[j + 3] = f.w;
    }
#pragma unroll
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(v[j]));
    float scale = amax / 127.f, inv = amax > 0.f ? 127.f / amax : 0.f;
    int sum = 0;
    u32 words[8];
#pragma unroll
    for (int j = 0; j < 32; j += 4)
    {
        int a = __float2int_rn(v[j] * inv), b = __float2int_rn(v[j + 1] * inv), c = __float2int_rn(v[j + 2] * inv), e = __float2int_rn(v[j + 3] * inv);
        sum += a + b + c + e;
        words[j / 4] = (u32)(a & 255) | ((u32)(b & 255) << 8) | ((u32)(c & 255) << 16) | ((u32)(e & 255) << 24);
    }
    uint4* dst = reinterpret_cast<uint4*>(q + (long long)t * qs + blk * 32);
    dst[0] = make_uint4(words[0], words[1], words[2], words[3]);
    dst[1] = make_uint4(words[4], words[5], words[6], words[7]);
    d[(long long)t * ds + blk] = scale;
    s[(long long)t * ds + blk] = scale * (float)sum;
}

// dp4a through inline PTX rather than the __dp4a intrinsic: older NVRTC releases (11.x) declare the intrinsic without a
// definition when compiling without a device header pass, and the instruction is the same.
__device__ __forceinline__ int dp4a(int a, int b, int c)
{
    int r;
    asm("dp4a.s32.s32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
    return r;
}

__device__ __forceinline__ int dot8(const uint4& w0, const uint4& w1, const uint4& x0, const uint4& x1, int acc)
{
    acc = dp4a((int)w0.x, (int)x0.x, acc); acc = dp4a((int)w0.y, (int)x0.y, acc);
    acc = dp4a((int)w0.z, (int)x0.z, acc); acc = dp4a((int)w0.w, (int)x0.w, acc);
    acc = dp4a((int)w1.x, (int)x1.x, acc); acc = dp4a((int)w1.y, (int)x1.y, acc);
    acc = dp4a((int)w1.z, (int)x1.z, acc); acc = dp4a((int)w1.w, (int)x1.w, acc);
    return acc;
}

__device__ __forceinline__ uint4 lo_nib(const uint4& v) { return make_uint4(v.x & 0x0F0F0F0Fu, v.y & 0x0F0F0F0Fu, v.z & 0x0F0F0F0Fu, v.w & 0x0F0F0F0Fu); }
__device__ __forceinline__ uint4 hi_nib(const uint4& v) { return make_uint4((v.x >> 4) & 0x0F0F0F0Fu, (v.y >> 4) & 0x0F0F0F0Fu, (v.z >> 4) & 0x0F0F0F0Fu, (v.w >> 4) & 0x0F0F0F0Fu); }
__device__ __forceinline__ uint4 ldq(const i8* p) { return *reinterpret_cast<const uint4*>(p); }

// Q8_0 (split layout): unit = block of 32.
template <int NB> __device__ __forceinline__ void unitq_q8_0(const Mat& m, int row, int u, const QAct& a, int nb, float* acc)
{
    const u8* p = m.q + row * m.qStride + u * 32;
    uint4 w0 = ld16(p), w1 = ld16(p + 16);
    float dw = h2f(reinterpret_cast<const u16*>(m.s + row * m.sStride)[u]);
#pragma unroll
    for (int b = 0; b < NB; b++)
    {
        if (b >= nb) break;
        const i8* xq = a.q + b * a.qs + u * 32;
        int isum = dot8(w0, w1, ldq(xq), ldq(xq + 16), 0);
        acc[b] += dw * a.d[b * a.ds + u] * (float)isum;
    }
}

// Q4_0 (split layout): unit = block of 32; codes are 0..15 with an implicit −8.
template <int NB> __device__ __forceinline__ void unitq_q4_0(const Mat& m, int row, int u, const QAct& a, int nb, float* acc)
{
    uint4 v = ld16(m.q + row * m.qStride + u * 16);
    uint4 lo = lo_nib(v), hi = hi_nib(v);
    float dw = h2f(reinterpret_cast<const u16*>(m.s + row * m.sStride)[u]);
#pragma unroll
    for (int b = 0; b < NB; b++)
    {
        if (b >= nb) break;
        const i8* xq = a.q + b * a.qs + u * 32;
        int isum = dot8(lo, hi, ldq(xq), ldq(xq + 16), 0);
        acc[b] += dw * (a.d[b * a.ds + u] * (float)isum - 8.f * a.s[b * a.ds + u]);
    }
}

// Q4_K (native 144-byte blocks): unit = 64 elements = activation blocks 2u and 2u + 1.
template <int NB> __device__ __forceinline__ void unitq_q4_k(const Mat& m, int row, int u, const QAct& a, int nb, float* acc)
{
    int sb = u >> 2, c = u & 3;
    const u8* blk = m.q + row * m.qStride + sb * 144;
    u32 dd = *reinterpret_cast<const u32*>(blk);
    u32 s3[3] = { *reinterpret_cast<const u32*>(blk + 4), *reinterpret_cast<const u32*>(blk + 8), *reinterpret_cast<const u32*>(blk + 12) };
    const u8* sc = reinterpret_cast<const u8*>(s3);
    uint4 q0 = ld16(blk + 16 + 32 * c), q1 = ld16(blk + 32 + 32 * c);
    float d = h2f((u16)(dd & 0xffff)), dmin = h2f((u16)(dd >> 16));
    int sa, ma, sbv, mb;
    scale_min_k4(2 * c, sc, sa, ma);
    scale_min_k4(2 * c + 1, sc, sbv, mb);
    float d1 = d * sa, m1 = dmin * ma, d2 = d * sbv, m2 = dmin * mb;
    uint4 l0 = lo_nib(q0), l1 = lo_nib(q1), h0 = hi_nib(q0), h1 = hi_nib(q1);
#pragma unroll
    for (int b = 0; b < NB; b++)
    {
        if (b >= nb) break;
        const i8* xq = a.q + b * a.qs + u * 64;
        int ia = dot8(l0, l1, ldq(xq), ldq(xq + 16), 0);
        int ib = dot8(h0, h1, ldq(xq + 32), ldq(xq + 48), 0);
        int k = b * a.ds + 2 * u;
        acc[b] += d1 * a.d[k] * (float)ia - m1 * a.s[k] + d2 * a.d[k + 1] * (float)ib - m2 * a.s[k + 1];
    }
}

// IntGroup 4-bit (split layout): unit = 32 codes u in 0..15, x ≈ s · (u − z).
template <int NB> __device__ __forceinline__ void unitq_int4(const Mat& m, int row, int u, const QAct& a, int nb, float* acc)
{
    uint4 v = ld16(m.q + row * m.qStride + u * 16);
    uint4 lo = lo_nib(v), hi = hi_nib(v);
    int g = (u * 32) / m.group;
    float s = reinterpret_cast<const float*>(m.s + row * m.sStride)[g];
    float z = m.z ? (float)m.z[row * (m.sStride / 4) + g] : 8.f;
#pragma unroll
    for (int b = 0; b < NB; b++)
    {
        if (b >= nb) break;
        const i8* xq = a.q + b * a.qs + u * 32;
        int isum = dot8(lo, hi, ldq(xq), ldq(xq + 16), 0);
        acc[b] += s * (a.d[b * a.ds + u] * (float)isum - z * a.s[b * a.ds + u]);
    }
}

// Row units are processed two at a time with all loads issued before the arithmetic, so each lane keeps more bytes in flight.
#define DEFINE_GEMVQ(NAME, UNIT)                                                                                      \
    template <int NB> __device__ void NAME##_body(Mat m, int rows, QAct a, float* y, int ys, int nb, int add)        \
    {                                                                                                                 \
        int lane = threadIdx.x & 31;                                                                                  \
        int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);                                               \
        if (row >= rows) return;                                                                                      \
        float acc[NB];                                                                                                \
        _Pragma("unroll") for (int b = 0; b < NB; b++) acc[b] = 0.f;                                                  \
        _Pragma("unroll 4") for (int u = lane; u < m.units; u += 32) UNIT<NB>(m, row, u, a, nb, acc);                 \
        GEMV_FINISH()                                                                                                 \
    }                                                                                                                 \
    extern "C" __global__ void NAME##_1(Mat m, int rows, QAct a, float* y, int ys, int nb, int add) { NAME##_body<1>(m, rows, a, y, ys, nb, add); } \
    extern "C" __global__ void NAME##_4(Mat m, int rows, QAct a, float* y, int ys, int nb, int add) { NAME##_body<4>(m, rows, a, y, ys, nb, add); } \
    extern "C" __global__ void NAME##_16(Mat m, int rows, QAct a, float* y, int ys, int nb, int add) { NAME##_body<16>(m, rows, a, y, ys, nb, add); }

DEFINE_GEMVQ(gemvq_q8_0, unitq_q8_0)
DEFINE_GEMVQ(gemvq_q4_0, unitq_q4_0)
DEFINE_GEMVQ(gemvq_q4_k, unitq_q4_k)
DEFINE_GEMVQ(gemvq_int4, unitq_int4)
