// Dequantize-GEMM on tensor cores for pieces of T >= 16 tokens (prompt chunks, or one token of each of many decoding
// sequences): Y[t][n] (+)= sum_k X[t][k] * W[n][k], X F32 activations [T][xs], W resident in its GEMV layout (struct Mat
// of gemv.cu). A block of 256 threads owns BM tokens x 128 weight rows; per K tile of 64 every thread dequantizes one
// 32-element slice of one weight row (row = tid / 2, half = tid % 2) from the quantized layout to F16 in shared memory,
// X is rounded to F16 (SPLIT: also its residual x - f16(x), a second MMA that brings activations to ~22 bits for
// unquantized F16 weights), and 8 warps run mma.sync m16n8k16 F16 x F16 -> F32 on ldmatrix-loaded fragments. The next
// tile's global loads are issued into registers before the current tile's MMAs, so weights stream while the tensor
// cores work. Weights are read once per BM tokens. gridDim.z > 1 splits K (small T or few row tiles): partial sums are
// added with atomics into y, which the launcher zeroes first unless it accumulates. F32 weights (the tiny llama2.c
// checkpoints) stay on the exact F32 GEMV. Needs sm_80; below that the bodies are empty and the host keeps the GEMV path.
// Every kernel begins with PDL_ENTER (gemv.cu), so it is safe beside programmatically launched kernels.

#define GEMM_BN 128
#define GEMM_BK 64
#define GEMM_LDS 36      // u32 (half pairs) per shared row: 32 + 4 padding, so the 8 rows of an ldmatrix phase hit 32 banks
#define GEMM_THREADS 256

__device__ __forceinline__ float gm_h2f(u16 h)
{
    float f;
    asm("{ .reg .f16 t; mov.b16 t, %1; cvt.f32.f16 %0, t; }" : "=f"(f) : "h"(h));
    return f;
}

// Two floats rounded to F16 and packed (lo in the low half), as the A/B fragments hold them.
__device__ __forceinline__ u32 gm_pack(float lo, float hi)
{
    u32 r;
    asm("{ .reg .f16 a, b; cvt.rn.f16.f32 a, %1; cvt.rn.f16.f32 b, %2; mov.b32 %0, {a, b}; }" : "=r"(r) : "f"(lo), "f"(hi));
    return r;
}

// The F16 residuals of a packed pair: lo - f16(lo), hi - f16(hi), packed again.
__device__ __forceinline__ u32 gm_residual(float lo, float hi, u32 packed)
{
    return gm_pack(lo - gm_h2f((u16)(packed & 0xffffu)), hi - gm_h2f((u16)(packed >> 16)));
}

__device__ __forceinline__ uint4 gm_ld16(const u8* p) { return __ldg(reinterpret_cast<const uint4*>(p)); }
__device__ __forceinline__ u32 gm_byte(const uint4& v, int j)
{
    u32 w = j < 4 ? v.x : j < 8 ? v.y : j < 12 ? v.z : v.w;
    return (w >> (8 * (j & 3))) & 0xffu;
}
__device__ __forceinline__ u32 gm_word(const uint4& v, int i) { return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w; }

// ---- weight slices: load(m, row, k0) reads the 32 elements k0 .. k0 + 31 of a row into registers (zeros past the
// row's units); put(out) writes them as 16 packed F16 pairs in column order. ----

struct GmF16
{
    uint4 v[4];
    __device__ void load(const Mat& m, int row, int k0, const float*)
    {
        const u8* p = m.q + row * m.qStride + k0 * 2;
#pragma unroll
        for (int i = 0; i < 4; i++) v[i] = k0 / 8 + i < m.units ? gm_ld16(p + 16 * i) : make_uint4(0, 0, 0, 0);
    }
    __device__ void put(u32* out) const
    {
#pragma unroll
        for (int i = 0; i < 4; i++) { out[4 * i] = v[i].x; out[4 * i + 1] = v[i].y; out[4 * i + 2] = v[i].z; out[4 * i + 3] = v[i].w; }
    }
};

// Q8_0 split layout: block b = k0 / 32 (32 int8 codes, fp16 d).
struct GmQ8_0
{
    uint4 a, c;
    float d;
    __device__ void load(const Mat& m, int row, int k0, const float*)
    {
        int b = k0 >> 5;
        bool ok = b < m.units;
        const u8* p = m.q + row * m.qStride + b * 32;
        a = ok ? gm_ld16(p) : make_uint4(0, 0, 0, 0);
        c = ok ? gm_ld16(p + 16) : make_uint4(0, 0, 0, 0);
        d = ok ? gm_h2f(reinterpret_cast<const u16*>(m.s + row * m.sStride)[b]) : 0.f;
    }
    __device__ void put(u32* out) const
    {
#pragma unroll
        for (int j = 0; j < 16; j += 2)
        {
            out[j / 2] = gm_pack(d * (float)(i8)gm_byte(a, j), d * (float)(i8)gm_byte(a, j + 1));
            out[8 + j / 2] = gm_pack(d * (float)(i8)gm_byte(c, j), d * (float)(i8)gm_byte(c, j + 1));
        }
    }
};

// 4-bit codes of one 32-element chunk in 16 bytes (byte j: element j low nibble, element j + 16 high nibble), value
// s * (code - z): Q4_0 (fp16 d, z = 8) and IntGroup 4-bit (f32 group scale, zero point u8 or 8).
struct GmNib32
{
    uint4 a;
    float s, z;
    __device__ void put(u32* out) const
    {
#pragma unroll
        for (int j = 0; j < 16; j += 2)
        {
            u32 v0 = gm_byte(a, j), v1 = gm_byte(a, j + 1);
            out[j / 2] = gm_pack(s * ((float)(v0 & 15) - z), s * ((float)(v1 & 15) - z));
            out[8 + j / 2] = gm_pack(s * ((float)(v0 >> 4) - z), s * ((float)(v1 >> 4) - z));
        }
    }
};

struct GmQ4_0 : GmNib32
{
    __device__ void load(const Mat& m, int row, int k0, const float*)
    {
        int b = k0 >> 5;
        bool ok = b < m.units;
        a = ok ? gm_ld16(m.q + row * m.qStride + b * 16) : make_uint4(0, 0, 0, 0);
        s = ok ? gm_h2f(reinterpret_cast<const u16*>(m.s + row * m.sStride)[b]) : 0.f;
        z = 8.f;
    }
};

struct GmInt4 : GmNib32
{
    __device__ void load(const Mat& m, int row, int k0, const float*)
    {
        int u = k0 >> 5;
        bool ok = u < m.units;
        int g = k0 / m.group;
        a = ok ? gm_ld16(m.q + row * m.qStride + u * 16) : make_uint4(0, 0, 0, 0);
        s = ok ? reinterpret_cast<const float*>(m.s + row * m.sStride)[g] : 0.f;
        z = ok && m.z ? (float)m.z[row * (m.sStride / 4) + g] : 8.f;
    }
};

// IntGroup 8-bit: two 16-code units, each in its own group (groups are multiples of 16), zero point 128 unless given.
struct GmInt8
{
    uint4 a[2];
    float s[2], z[2];
    __device__ void load(const Mat& m, int row, int k0, const float*)
    {
#pragma unroll
        for (int i = 0; i < 2; i++)
        {
            int u = (k0 >> 4) + i;
            bool ok = u < m.units;
            int g = (u * 16) / m.group;
            a[i] = ok ? gm_ld16(m.q + row * m.qStride + u * 16) : make_uint4(0, 0, 0, 0);
            s[i] = ok ? reinterpret_cast<const float*>(m.s + row * m.sStride)[g] : 0.f;
            z[i] = ok && m.z ? (float)m.z[row * (m.sStride / 4) + g] : 128.f;
        }
    }
    __device__ void put(u32* out) const
    {
#pragma unroll
        for (int i = 0; i < 2; i++)
#pragma unroll
            for (int j = 0; j < 16; j += 2)
                out[8 * i + j / 2] = gm_pack(s[i] * ((float)gm_byte(a[i], j) - z[i]), s[i] * ((float)gm_byte(a[i], j + 1) - z[i]));
    }
};

// Q4_K as repacked at upload (Q4KRepack, gemv.cu's unit_q4_k): piece u = k0 / 32 is sub-block u % 8 of super-block u / 8
// in 16 bytes (byte j: element j low nibble, j + 16 high nibble), its 16-byte super-block header at m.s; value
// d * sc * q - dmin * m (q4k_scale).
struct GmQ4_K
{
    uint4 a;
    float d, mn;
    __device__ void load(const Mat& m, int row, int k0, const float*)
    {
        int u = k0 >> 5;
        bool ok = u < m.units;
        a = ok ? gm_ld16(m.q + row * m.qStride + u * 16) : make_uint4(0, 0, 0, 0);
        d = 0.f; mn = 0.f;
        if (ok) q4k_scale(gm_ld16(m.s + row * m.sStride + (u >> 3) * 16), u & 7, d, mn);
    }
    __device__ void put(u32* out) const
    {
#pragma unroll
        for (int j = 0; j < 16; j += 2)
        {
            u32 v0 = gm_byte(a, j), v1 = gm_byte(a, j + 1);
            out[j / 2] = gm_pack(d * (float)(v0 & 15) - mn, d * (float)(v1 & 15) - mn);
            out[8 + j / 2] = gm_pack(d * (float)(v0 >> 4) - mn, d * (float)(v1 >> 4) - mn);
        }
    }
};

// Q5_K as repacked at upload (Q5KRepack, gemv.cu's unit_q5_k): piece u = k0 / 32 in 16 bytes, its fifth-bit word at
// 16 · units + 4u of the row's codes, its super-block header at m.s; value d * sc * q - dmin * m (q4k_scale, q5k_code).
struct GmQ5_K
{
    uint4 a;
    u32 f;
    float d, mn;
    __device__ void load(const Mat& m, int row, int k0, const float*)
    {
        int u = k0 >> 5;
        bool ok = u < m.units;
        const u8* base = m.q + row * m.qStride;
        a = ok ? gm_ld16(base + u * 16) : make_uint4(0, 0, 0, 0);
        f = ok ? __ldg(reinterpret_cast<const u32*>(base + (long long)m.units * 16) + u) : 0u;
        d = 0.f; mn = 0.f;
        if (ok) q4k_scale(gm_ld16(m.s + row * m.sStride + (u >> 3) * 16), u & 7, d, mn);
    }
    __device__ void put(u32* out) const
    {
#pragma unroll
        for (int j = 0; j < 16; j += 2)
        {
            out[j / 2] = gm_pack(d * (float)q5k_code(a, f, j) - mn, d * (float)q5k_code(a, f, j + 1) - mn);
            out[8 + j / 2] = gm_pack(d * (float)q5k_code(a, f, 16 + j) - mn, d * (float)q5k_code(a, f, 17 + j) - mn);
        }
    }
};

// Q6_K as repacked at upload (Q6KRepack, gemv.cu's unit_q6_k): piece u = k0 / 32 in 16 bytes, its 8-byte high-part word
// at 16 · units + 8u of the row's codes, int8 scales 2u, 2u + 1 and (after 2 · units scale bytes) fp16 d of super-block
// u / 8 at m.s; value d * sc * (q - 32) (q6k_code).
struct GmQ6_K
{
    uint4 a;
    uint2 hb;
    float s0, s1;
    __device__ void load(const Mat& m, int row, int k0, const float*)
    {
        int u = k0 >> 5;
        bool ok = u < m.units;
        const u8* base = m.q + row * m.qStride;
        a = ok ? gm_ld16(base + u * 16) : make_uint4(0, 0, 0, 0);
        hb = ok ? __ldg(reinterpret_cast<const uint2*>(base + (long long)m.units * 16) + u) : make_uint2(0, 0);
        s0 = 0.f; s1 = 0.f;
        if (ok)
        {
            const u8* srow = m.s + row * m.sStride;
            u32 sp = __ldg(reinterpret_cast<const u16*>(srow) + u);
            float d = gm_h2f(__ldg(reinterpret_cast<const u16*>(srow + m.units * 2) + (u >> 3)));
            s0 = d * (float)(i8)(sp & 255u);
            s1 = d * (float)(i8)(sp >> 8);
        }
    }
    __device__ void put(u32* out) const
    {
#pragma unroll
        for (int j = 0; j < 16; j += 2)
        {
            out[j / 2] = gm_pack(s0 * (float)q6k_code(a, hb, j), s0 * (float)q6k_code(a, hb, j + 1));
            out[8 + j / 2] = gm_pack(s1 * (float)q6k_code(a, hb, 16 + j), s1 * (float)q6k_code(a, hb, 17 + j));
        }
    }
};

// NF4 / FP4 split layout: block b = k0 / 64 of 32 code bytes (byte j: element j low nibble, element j + 32 high
// nibble), f32 absmax per block; the 16 code values are in shared memory.
struct GmNf4
{
    uint4 a, c;
    float s;
    int h;
    const float* lut;
    __device__ void load(const Mat& m, int row, int k0, const float* table)
    {
        int b = k0 >> 6;
        h = (k0 >> 5) & 1;
        lut = table;
        bool ok = b < m.units;
        const u8* p = m.q + row * m.qStride + b * 32;
        a = ok ? gm_ld16(p) : make_uint4(0, 0, 0, 0);
        c = ok ? gm_ld16(p + 16) : make_uint4(0, 0, 0, 0);
        s = ok ? reinterpret_cast<const float*>(m.s + row * m.sStride)[b] : 0.f;
    }
    __device__ void put(u32* out) const
    {
        int sh = 4 * h;
#pragma unroll
        for (int j = 0; j < 16; j += 2)
        {
            out[j / 2] = gm_pack(s * lut[(gm_byte(a, j) >> sh) & 15], s * lut[(gm_byte(a, j + 1) >> sh) & 15]);
            out[8 + j / 2] = gm_pack(s * lut[(gm_byte(c, j) >> sh) & 15], s * lut[(gm_byte(c, j + 1) >> sh) & 15]);
        }
    }
};

// Four 8x8 F16 matrices from shared memory; lane l gives the address of row l % 8 of matrix l / 8, and register i of
// lane t receives row t / 4, columns 2 (t % 4) .. + 1 of matrix i: the m16n8k16 fragment layout.
__device__ __forceinline__ void gm_ldsm4(const u32* p, u32& r0, u32& r1, u32& r2, u32& r3)
{
    u32 a;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];" : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(a));
}

__device__ __forceinline__ void gm_mma(float* c, const u32* a, u32 b0, u32 b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

template <class F, int BM, bool SPLIT>
__device__ __forceinline__ void gemm_body(const Mat& m, int rows, const float* x, int xs, float* y, int ys, int T, int add,
    int tilesPerSplit, const float* lutg)
{
#if __CUDA_ARCH__ >= 800
    constexpr int WARPS_M = BM >= 64 ? BM / 32 : 1, WARPS_N = 8 / WARPS_M;
    constexpr int WTM = BM / WARPS_M, WTN = GEMM_BN / WARPS_N, MT = WTM / 16, NT = WTN / 8;
    constexpr int XV = BM * GEMM_BK / 4 / GEMM_THREADS;   // float4 loads of X per thread per tile
    __shared__ __align__(16) u32 xsh[BM * GEMM_LDS];
    __shared__ __align__(16) u32 xlo[SPLIT ? BM * GEMM_LDS : 4];
    __shared__ __align__(16) u32 wsh[GEMM_BN * GEMM_LDS];
    __shared__ float lut[16];
    int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    if (tid < 16) lut[tid] = lutg ? lutg[tid] : 0.f;
    int wm = warp / WARPS_N, wn = warp % WARPS_N, g = lane >> 2, c4 = lane & 3;
    int n0 = blockIdx.x * GEMM_BN, t0 = blockIdx.y * BM;
    int kTiles = (m.cols + GEMM_BK - 1) / GEMM_BK;
    int kt0 = blockIdx.z * tilesPerSplit, kt1 = min(kTiles, kt0 + tilesPerSplit);
    if (kt0 >= kt1) return;
    int wr = tid >> 1, wh = tid & 1;
    bool rowOk = n0 + wr < rows;
    int wrow = rowOk ? n0 + wr : 0;
    __syncthreads();   // lut visible before the first load reads it

    F w;
    float4 xr[XV];
    auto load = [&](int kt) {
        if (rowOk) w.load(m, wrow, kt * GEMM_BK + wh * 32, lut);
#pragma unroll
        for (int i = 0; i < XV; i++)
        {
            int idx = tid + i * GEMM_THREADS, tr = idx >> 4, tc = (idx & 15) * 4;
            xr[i] = t0 + tr < T ? *reinterpret_cast<const float4*>(x + (long long)(t0 + tr) * xs + kt * GEMM_BK + tc) : make_float4(0.f, 0.f, 0.f, 0.f);
        }
    };

    float acc[MT][NT][4];
#pragma unroll
    for (int i = 0; i < MT; i++)
#pragma unroll
        for (int j = 0; j < NT; j++) acc[i][j][0] = acc[i][j][1] = acc[i][j][2] = acc[i][j][3] = 0.f;

    load(kt0);
    for (int kt = kt0; kt < kt1; kt++)
    {
        u32 out[16];
        if (rowOk) w.put(out);
        else
        {
#pragma unroll
            for (int i = 0; i < 16; i++) out[i] = 0;
        }
        uint4* wd = reinterpret_cast<uint4*>(wsh + wr * GEMM_LDS + wh * 16);
        wd[0] = make_uint4(out[0], out[1], out[2], out[3]);
        wd[1] = make_uint4(out[4], out[5], out[6], out[7]);
        wd[2] = make_uint4(out[8], out[9], out[10], out[11]);
        wd[3] = make_uint4(out[12], out[13], out[14], out[15]);
#pragma unroll
        for (int i = 0; i < XV; i++)
        {
            int idx = tid + i * GEMM_THREADS, tr = idx >> 4, tc = (idx & 15) * 4;
            u32 p0 = gm_pack(xr[i].x, xr[i].y), p1 = gm_pack(xr[i].z, xr[i].w);
            *reinterpret_cast<uint2*>(xsh + tr * GEMM_LDS + tc / 2) = make_uint2(p0, p1);
            if (SPLIT) *reinterpret_cast<uint2*>(xlo + tr * GEMM_LDS + tc / 2) = make_uint2(gm_residual(xr[i].x, xr[i].y, p0), gm_residual(xr[i].z, xr[i].w, p1));
        }
        __syncthreads();
        if (kt + 1 < kt1) load(kt + 1);
#pragma unroll
        for (int ks = 0; ks < GEMM_BK / 16; ks++)
        {
            // A (tokens x k): matrices rows +0 / +8 by k +0 / +8 (lane l: row l % 8 + 8 ((l / 8) & 1), k 8 (l / 16)).
            // B (weight rows x k): matrices n-tile j k +0, j k +8, j + 1 k +0, j + 1 k +8 (lane l: row l % 8 + 8 (l / 16), k 8 ((l / 8) & 1)).
            u32 a[MT][4], al[SPLIT ? MT : 1][4];
            int lr = lane & 7, l8 = (lane >> 3) & 1, l16 = lane >> 4;
#pragma unroll
            for (int i = 0; i < MT; i++)
            {
                int off = (wm * WTM + i * 16 + lr + 8 * l8) * GEMM_LDS + ks * 8 + 4 * l16;
                gm_ldsm4(xsh + off, a[i][0], a[i][1], a[i][2], a[i][3]);
                if (SPLIT) gm_ldsm4(xlo + off, al[i][0], al[i][1], al[i][2], al[i][3]);
            }
#pragma unroll
            for (int j = 0; j < NT; j += 2)
            {
                u32 b[4];
                gm_ldsm4(wsh + (wn * WTN + j * 8 + lr + 8 * l16) * GEMM_LDS + ks * 8 + 4 * l8, b[0], b[1], b[2], b[3]);
#pragma unroll
                for (int i = 0; i < MT; i++)
                {
                    gm_mma(acc[i][j], a[i], b[0], b[1]);
                    gm_mma(acc[i][j + 1], a[i], b[2], b[3]);
                    if (SPLIT)
                    {
                        gm_mma(acc[i][j], al[i], b[0], b[1]);
                        gm_mma(acc[i][j + 1], al[i], b[2], b[3]);
                    }
                }
            }
        }
        __syncthreads();
    }

    bool atomic = gridDim.z > 1;
#pragma unroll
    for (int i = 0; i < MT; i++)
#pragma unroll
        for (int j = 0; j < NT; j++)
#pragma unroll
            for (int e = 0; e < 4; e++)
            {
                int t = t0 + wm * WTM + i * 16 + g + (e >= 2 ? 8 : 0);
                int n = n0 + wn * WTN + j * 8 + 2 * c4 + (e & 1);
                if (t >= T || n >= rows) continue;
                float* dst = y + (long long)t * ys + n;
                if (atomic) atomicAdd(dst, acc[i][j][e]);
                else *dst = add ? *dst + acc[i][j][e] : acc[i][j][e];
            }
#endif
}

#define GEMM_KERNEL(NAME, F, BM, SPLIT)                                                                               \
    extern "C" __global__ void __launch_bounds__(GEMM_THREADS) NAME(Mat m, int rows, const float* x, int xs, float* y, int ys, \
        int T, int add, int tilesPerSplit, const float* lut)                                                          \
    { PDL_ENTER(); gemm_body<F, BM, SPLIT>(m, rows, x, xs, y, ys, T, add, tilesPerSplit, lut); }

#define DEFINE_GEMM(NAME, F)            \
    GEMM_KERNEL(NAME##_32, F, 32, false)  \
    GEMM_KERNEL(NAME##_64, F, 64, false)  \
    GEMM_KERNEL(NAME##_128, F, 128, false)

DEFINE_GEMM(gemm_f16, GmF16)
DEFINE_GEMM(gemm_q8_0, GmQ8_0)
DEFINE_GEMM(gemm_q4_0, GmQ4_0)
DEFINE_GEMM(gemm_q4_k, GmQ4_K)
DEFINE_GEMM(gemm_q5_k, GmQ5_K)
DEFINE_GEMM(gemm_q6_k, GmQ6_K)
DEFINE_GEMM(gemm_int4, GmInt4)
DEFINE_GEMM(gemm_int8, GmInt8)
DEFINE_GEMM(gemm_nf4, GmNf4)
GEMM_KERNEL(gemm_f16_x2_32, GmF16, 32, true)
GEMM_KERNEL(gemm_f16_x2_64, GmF16, 64, true)
