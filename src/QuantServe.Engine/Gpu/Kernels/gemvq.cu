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

// Weights stream through once per product: 16-byte loads that skip L1 (L1::no_allocate) so the activations, which every
// row re-reads, keep the L1.
__device__ __forceinline__ uint4 ldw(const u8* p)
{
    uint4 r;
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(p));
    return r;
}

__device__ __forceinline__ int dot4(const uint4& w, const uint4& x, int acc)
{
    acc = dp4a((int)w.x, (int)x.x, acc); acc = dp4a((int)w.y, (int)x.y, acc);
    acc = dp4a((int)w.z, (int)x.z, acc); return dp4a((int)w.w, (int)x.w, acc);
}

// ---- "pieces": every integer-dot format is laid out at upload so that a row's codes are a run of 16-byte pieces, and
// lane l of the row's warp reads pieces l, l + 32, l + 64, ... — each warp-wide load is 512 contiguous bytes. A piece is
// one 32-element block for the 4-bit formats (byte j: element j in the low nibble, element j + 16 in the high nibble, so
// it meets exactly one 32-element activation block) and half a block for Q8_0. Scales live in separate arrays. ----

#define FMT_Q8_0 0
#define FMT_Q4_0 1
#define FMT_Q4_K 2
#define FMT_INT4 3

// Adds piece o of `row` (codes w) times each activation row b < nb into acc[b].
//   Q8_0: Σ ≈ d_w · d_x · Σ q_w q_x over the piece's 16 elements (block o / 2).
//   Q4_0: d_w · (d_x · Σ u q_x − 8 · d_x Σ q_x), u the 4-bit codes.
//   Q4_K: (d · sc_k) · d_x · Σ u q_x − (dmin · m_k) · d_x Σ q_x, sub-block k = o % 8 of super-block o / 8 (header: fp16 d,
//         fp16 dmin, the 12 packed 6-bit scale/min bytes).
//   int4: s_g · (d_x · Σ u q_x − z_g · d_x Σ q_x), group g = 32·o / group, z = 8 when symmetric.
template <int FMT, int NB> __device__ __forceinline__ void piece(const Mat& m, int row, int o, const uint4& w, const QAct& a, int nb, float* acc)
{
    if constexpr (FMT == FMT_Q8_0)
    {
        float dw = h2f(reinterpret_cast<const u16*>(m.s + row * m.sStride)[o >> 1]);
#pragma unroll
        for (int b = 0; b < NB; b++)
        {
            if (b >= nb) break;
            int isum = dot4(w, ldq(a.q + b * a.qs + o * 16), 0);
            acc[b] += dw * a.d[b * a.ds + (o >> 1)] * (float)isum;
        }
    }
    else
    {
        uint4 lo = lo_nib(w), hi = hi_nib(w);
        float scale, offset;
        if constexpr (FMT == FMT_Q4_0)
        {
            scale = h2f(reinterpret_cast<const u16*>(m.s + row * m.sStride)[o]);
            offset = 8.f * scale;
        }
        else if constexpr (FMT == FMT_INT4)
        {
            int g = (o * 32) / m.group;
            scale = reinterpret_cast<const float*>(m.s + row * m.sStride)[g];
            offset = scale * (m.z ? (float)m.z[row * (m.sStride / 4) + g] : 8.f);
        }
        else
        {
            uint4 hd = __ldg(reinterpret_cast<const uint4*>(m.s + row * m.sStride + (o >> 3) * 16));
            q4k_scale(hd, o & 7, scale, offset);
        }
#pragma unroll
        for (int b = 0; b < NB; b++)
        {
            if (b >= nb) break;
            const i8* xq = a.q + b * a.qs + o * 32;
            int isum = dot8(lo, hi, ldq(xq), ldq(xq + 16), 0);
            acc[b] += scale * a.d[b * a.ds + o] * (float)isum - offset * a.s[b * a.ds + o];
        }
    }
}

// One warp per output row (GLU: per pair of rows r and r + rows of a [gate; up] matrix, written as SiLU(gate) · up);
// each lane issues U independent 16-byte weight loads before using any, so a warp keeps U × 512 bytes in flight.
template <int FMT, int NB, bool GLU> __device__ void gemvq_body(const Mat& m, int rows, const QAct& a, float* y, int ys, int nb, int add)
{
    constexpr int U = NB == 1 ? 8 : 4;
    int lane = threadIdx.x & 31;
    int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= rows) return;
    int row2 = GLU ? row + rows : row;
    const u8* p1 = m.q + row * m.qStride;
    const u8* p2 = m.q + row2 * m.qStride;
    int n = FMT == FMT_Q8_0 ? 2 * m.units : m.units;
    float acc[NB], acc2[NB];
#pragma unroll
    for (int b = 0; b < NB; b++) { acc[b] = 0.f; acc2[b] = 0.f; }
    int o = lane;
    for (; o + 32 * (U - 1) < n; o += 32 * U)
    {
        uint4 w[U], v[GLU ? U : 1];
#pragma unroll
        for (int i = 0; i < U; i++) w[i] = ldw(p1 + (long long)(o + 32 * i) * 16);
        if constexpr (GLU)
        {
#pragma unroll
            for (int i = 0; i < U; i++) v[i] = ldw(p2 + (long long)(o + 32 * i) * 16);
        }
#pragma unroll
        for (int i = 0; i < U; i++) piece<FMT, NB>(m, row, o + 32 * i, w[i], a, nb, acc);
        if constexpr (GLU)
        {
#pragma unroll
            for (int i = 0; i < U; i++) piece<FMT, NB>(m, row2, o + 32 * i, v[i], a, nb, acc2);
        }
    }
    for (; o < n; o += 32)
    {
        piece<FMT, NB>(m, row, o, ldw(p1 + (long long)o * 16), a, nb, acc);
        if constexpr (GLU) piece<FMT, NB>(m, row2, o, ldw(p2 + (long long)o * 16), a, nb, acc2);
    }
#pragma unroll
    for (int b = 0; b < NB; b++)
    {
        acc[b] = warp_sum(acc[b]);
        if constexpr (GLU) acc2[b] = warp_sum(acc2[b]);
    }
    if (lane == 0)
    {
#pragma unroll
        for (int b = 0; b < NB; b++)
        {
            if (b >= nb) break;
            float* dst = y + (long long)b * ys + row;
            if constexpr (GLU) *dst = acc[b] / (1.f + expf(-acc[b])) * acc2[b];
            else *dst = add ? *dst + acc[b] : acc[b];
        }
    }
}

#define GEMVQ_ENTRY(NAME, FMT, NB)                                                                                     \
    extern "C" __global__ void __launch_bounds__(128) NAME##_##NB(Mat m, int rows, QAct a, float* y, int ys, int nb, int add) \
    { gemvq_body<FMT, NB, false>(m, rows, a, y, ys, nb, add); }                                                       \
    extern "C" __global__ void __launch_bounds__(128) NAME##_glu_##NB(Mat m, int rows, QAct a, float* y, int ys, int nb, int add) \
    { gemvq_body<FMT, NB, true>(m, rows, a, y, ys, nb, add); }
#define DEFINE_GEMVQ(NAME, FMT) GEMVQ_ENTRY(NAME, FMT, 1) GEMVQ_ENTRY(NAME, FMT, 4) GEMVQ_ENTRY(NAME, FMT, 16)

DEFINE_GEMVQ(gemvq_q8_0, FMT_Q8_0)
DEFINE_GEMVQ(gemvq_q4_0, FMT_Q4_0)
DEFINE_GEMVQ(gemvq_q4_k, FMT_Q4_K)
DEFINE_GEMVQ(gemvq_int4, FMT_INT4)

// RMSNorm fused with the int8 quantization above: y[t] = w ⊙ x[r] / sqrt(mean(x[r]²) + eps) for r = rows[t] (null: t),
// written as F32 (columns < dim) and, per block of 32 of the padded width qs, as codes q = round_half_even(y / d) with
// d = amax / 127 and d · Σq — the same values rmsnorm followed by quantize_q8 produce. Grid (T), 256 threads.
extern "C" __global__ void rmsnorm_q8(const float* x, int xs, const int* rows, const float* w, float* y, int ys, int dim, float eps,
    i8* q, int qs, float* d, float* s, int ds)
{
    __shared__ float part[8];
    int t = blockIdx.x, lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    const float* xr = x + (long long)(rows ? rows[t] : t) * xs;
    float ss = 0.f;
    for (int c = threadIdx.x; c < dim; c += blockDim.x) ss += xr[c] * xr[c];
    ss = warp_sum(ss);
    if (lane == 0) part[warp] = ss;
    __syncthreads();
    float total = 0.f;
    for (int i = 0; i < warps; i++) total += part[i];
    float scale = 1.f / sqrtf(total / dim + eps);
    for (int blk = warp; blk < qs / 32; blk += warps)
    {
        int c = blk * 32 + lane;
        float v = c < dim ? xr[c] * w[c] * scale : 0.f;
        if (c < dim) y[(long long)t * ys + c] = v;
        float amax = fabsf(v);
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
        float inv = amax > 0.f ? 127.f / amax : 0.f;
        int code = __float2int_rn(v * inv);
        q[(long long)t * qs + c] = (i8)code;
        int sum = code;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
        if (lane == 0)
        {
            d[(long long)t * ds + blk] = amax / 127.f;
            s[(long long)t * ds + blk] = amax / 127.f * (float)sum;
        }
    }
}
