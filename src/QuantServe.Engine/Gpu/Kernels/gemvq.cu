// Integer-dot GEMV for Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, 4- and 8-bit IntGroup and NF4/FP4 codebook weights: activations are first quantized per block of 32 to
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
    PDL_ENTER();
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

// Two independent dp4a chains of four, so consecutive instructions do not wait on each other.
__device__ __forceinline__ int dot8(const uint4& w0, const uint4& w1, const uint4& x0, const uint4& x1, int acc)
{
    int a = dp4a((int)w0.x, (int)x0.x, acc), b = dp4a((int)w1.x, (int)x1.x, 0);
    a = dp4a((int)w0.y, (int)x0.y, a); b = dp4a((int)w1.y, (int)x1.y, b);
    a = dp4a((int)w0.z, (int)x0.z, a); b = dp4a((int)w1.z, (int)x1.z, b);
    a = dp4a((int)w0.w, (int)x0.w, a); b = dp4a((int)w1.w, (int)x1.w, b);
    return a + b;
}

// dp4a with unsigned bytes in a (the low digits of the codebook tables below) and signed bytes in b.
__device__ __forceinline__ int dp4a_us(u32 a, int b, int c)
{
    int r;
    asm("dp4a.u32.s32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
    return r;
}

__device__ __forceinline__ u32 prmt(u32 a, u32 b, u32 s)
{
    u32 r;
    asm("prmt.b32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(s));
    return r;
}

// A 16-entry byte table t (t.x: entries 0-3 … t.w: entries 12-15) applied to the 8 nibbles of w: lo gets the entries of
// the low nibbles of w's bytes 0..3, hi those of the high nibbles. prmt picks bytes by 3-bit index (nibble bit 3 would
// switch it to sign replication, so it is masked off), once from entries 0-7 and once from 8-15; a third prmt takes each
// byte from the half that nibble bit 3 names; the last two separate low and high nibbles, which meet different
// activation blocks.
__device__ __forceinline__ void lookup16(u32 idx, u32 sel, const uint4& t, u32& lo, u32& hi)
{
    u32 a0 = prmt(prmt(t.x, t.y, idx), prmt(t.z, t.w, idx), sel);
    u32 a1 = prmt(prmt(t.x, t.y, idx >> 16), prmt(t.z, t.w, idx >> 16), sel >> 16);
    lo = prmt(a0, a1, 0x6420u);
    hi = prmt(a0, a1, 0x7531u);
}

__device__ __forceinline__ uint4 lo_nib(const uint4& v) { return make_uint4(v.x & 0x0F0F0F0Fu, v.y & 0x0F0F0F0Fu, v.z & 0x0F0F0F0Fu, v.w & 0x0F0F0F0Fu); }
__device__ __forceinline__ uint4 hi_nib(const uint4& v) { return make_uint4((v.x >> 4) & 0x0F0F0F0Fu, (v.y >> 4) & 0x0F0F0F0Fu, (v.z >> 4) & 0x0F0F0F0Fu, (v.w >> 4) & 0x0F0F0F0Fu); }
__device__ __forceinline__ uint4 ldq(const i8* p) { return *reinterpret_cast<const uint4*>(p); }

// Weights stream through once per product: 16-byte loads that skip L1 (L1::no_allocate) so the activations, which every
// row re-reads, keep the L1, and ask L2 to fetch 256-byte runs (a warp reads its row in runs of 4 × 512 bytes).
__device__ __forceinline__ uint4 ldw(const u8* p)
{
    uint4 r;
    asm("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(p));
    return r;
}

// The same for the narrower side arrays of the k-quants (Q5_K fifth bits, Q6_K high parts), 4 and 8 bytes per piece.
__device__ __forceinline__ u32 ldw4(const u8* p)
{
    u32 r;
    asm("ld.global.nc.L1::no_allocate.u32 %0, [%1];" : "=r"(r) : "l"(p));
    return r;
}
__device__ __forceinline__ uint2 ldw8(const u8* p)
{
    uint2 r;
    asm("ld.global.nc.L1::no_allocate.L2::256B.v2.u32 {%0, %1}, [%2];" : "=r"(r.x), "=r"(r.y) : "l"(p));
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
// it meets exactly one 32-element activation block) and half a block for Q8_0. Scales live in separate arrays; so do the
// fifth bits of Q5_K and the high 2 bits of Q6_K (after a row's pieces, 4 and 8 bytes per piece, loaded with the scales). ----

#define FMT_Q8_0 0
#define FMT_Q4_0 1
#define FMT_Q4_K 2
#define FMT_INT4 3
#define FMT_Q5_K 4
#define FMT_Q6_K 5

// Q5_K piece words with their fifth bits (Q5KRepack): word t of the piece gives codes 4t..4t+3 (lo) and 16+4t..19+4t (hi),
// the fifth bits of those sit at bit t and 4 + t of each byte of f. Codes 0..31.
__device__ __forceinline__ void q5k_words(const uint4& w, u32 f, uint4& lo, uint4& hi)
{
    lo.x = (w.x & 0x0F0F0F0Fu) | ((f << 4) & 0x10101010u); hi.x = ((w.x >> 4) & 0x0F0F0F0Fu) | (f & 0x10101010u);
    lo.y = (w.y & 0x0F0F0F0Fu) | ((f << 3) & 0x10101010u); hi.y = ((w.y >> 4) & 0x0F0F0F0Fu) | ((f >> 1) & 0x10101010u);
    lo.z = (w.z & 0x0F0F0F0Fu) | ((f << 2) & 0x10101010u); hi.z = ((w.z >> 4) & 0x0F0F0F0Fu) | ((f >> 2) & 0x10101010u);
    lo.w = (w.w & 0x0F0F0F0Fu) | ((f << 1) & 0x10101010u); hi.w = ((w.w >> 4) & 0x0F0F0F0Fu) | ((f >> 3) & 0x10101010u);
}

// Four 6-bit codes q (bytes 0..63) to the signed bytes q − 32: with bit 7 set no byte borrows from the next, and
// (q + 128 − 32) with bit 7 flipped is q − 32 modulo 256.
__device__ __forceinline__ u32 q6_sub32(u32 v) { return ((v | 0x80808080u) - 0x20202020u) ^ 0x80808080u; }

// Q6_K piece words with their high parts (Q6KRepack), as signed bytes q − 32: word t takes bits 4(t mod 2) .. +3 of half
// ⌊t / 2⌋ of hb, the low 2 for codes 4t..4t+3 (lo), the next 2 for 16+4t..19+4t (hi).
__device__ __forceinline__ void q6k_words(const uint4& w, const uint2& hb, uint4& lo, uint4& hi)
{
#define Q6K_WORD(W, H, L, HI) L = q6_sub32((W & 0x0F0F0F0Fu) | ((H & 0x03030303u) << 4)); HI = q6_sub32(((W >> 4) & 0x0F0F0F0Fu) | (((H >> 2) & 0x03030303u) << 4));
    Q6K_WORD(w.x, hb.x, lo.x, hi.x)
    Q6K_WORD(w.y, (hb.x >> 4), lo.y, hi.y)
    Q6K_WORD(w.z, hb.y, lo.z, hi.z)
    Q6K_WORD(w.w, (hb.y >> 4), lo.w, hi.w)
#undef Q6K_WORD
}
#define FMT_INT8 6
#define FMT_NF4 7

// NF4 / FP4: every code value c (|c| ≤ 1) is held as the integer I = round(32767 · c) = 256 · h + l, h a signed and l an
// unsigned byte, in two 16-entry byte tables (h, then l), 32 bytes the upload puts at Mat.z.
#define CB_SCALE 32767.f

// A piece's raw scale bits, loaded together with its codes (they come from DRAM too, and loading them only when the
// piece is multiplied would add a second memory latency per round) and decoded by piece_scale when used.
template <int FMT> struct ScaleBits { u32 a, b; };   // Q8_0, Q4_0: a = fp16 scale; int4/int8: a = float scale bits, b = zero point; nf4: a = absmax
template <> struct ScaleBits<FMT_Q4_K> { uint4 h; }; // the super-block header: fp16 d, fp16 dmin, 12 packed 6-bit scale/min bytes
template <> struct ScaleBits<FMT_Q5_K> { uint4 h; u32 f; }; // the header as Q4_K's, and the piece's fifth-bit word
template <> struct ScaleBits<FMT_Q6_K> { uint2 hb; u32 a; }; // the piece's high parts; its two int8 scales | fp16 d << 16

template <int FMT> __device__ __forceinline__ ScaleBits<FMT> load_scale(const Mat& m, int row, int o, int gshift)
{
    ScaleBits<FMT> r;
    const u8* s = m.s + row * m.sStride;
    if constexpr (FMT == FMT_Q8_0) r.a = __ldg(reinterpret_cast<const u16*>(s) + (o >> 1));
    else if constexpr (FMT == FMT_Q4_0) r.a = __ldg(reinterpret_cast<const u16*>(s) + o);
    else if constexpr (FMT == FMT_INT4)
    {
        int g = gshift >= 0 ? (o * 32) >> gshift : (o * 32) / m.group;
        r.a = __ldg(reinterpret_cast<const u32*>(s) + g);
        r.b = m.z ? (u32)__ldg(m.z + row * (m.sStride / 4) + g) : 8u;
    }
    else if constexpr (FMT == FMT_INT8)
    {
        int g = gshift >= 0 ? (o * 16) >> gshift : (o * 16) / m.group;
        r.a = __ldg(reinterpret_cast<const u32*>(s) + g);
        r.b = m.z ? (u32)__ldg(m.z + row * (m.sStride / 4) + g) : 128u;
    }
    else if constexpr (FMT == FMT_NF4) r.a = __ldg(reinterpret_cast<const u32*>(s) + (o >> 1));
    else if constexpr (FMT == FMT_Q6_K)
    {
        r.hb = ldw8(m.q + row * m.qStride + (long long)m.units * 16 + o * 8);
        r.a = (u32)__ldg(reinterpret_cast<const u16*>(s) + o) | (u32)__ldg(reinterpret_cast<const u16*>(s + m.units * 2) + (o >> 3)) << 16;
    }
    else
    {
        r.h = __ldg(reinterpret_cast<const uint4*>(s + (o >> 3) * 16));
        if constexpr (FMT == FMT_Q5_K) r.f = ldw4(m.q + row * m.qStride + (long long)m.units * 16 + o * 4);
    }
    return r;
}

// A piece's scale and offset (see the contribution below) from its raw bits.
template <int FMT> __device__ __forceinline__ void piece_scale(const ScaleBits<FMT>& b, int o, float& scale, float& offset)
{
    if constexpr (FMT == FMT_Q8_0) { scale = h2f((u16)b.a); offset = 0.f; }
    else if constexpr (FMT == FMT_Q4_0) { scale = h2f((u16)b.a); offset = 8.f * scale; }
    else if constexpr (FMT == FMT_INT4) { scale = __uint_as_float(b.a); offset = scale * (float)b.b; }
    else if constexpr (FMT == FMT_Q6_K)
    {
        // Two scales, one per 16-element half of the piece: scale for codes 0..15, offset (reused) for 16..31.
        float d = h2f((u16)(b.a >> 16));
        scale = d * (float)(i8)(b.a & 255u);
        offset = d * (float)(i8)((b.a >> 8) & 255u);
    }
    else if constexpr (FMT == FMT_INT8 || FMT == FMT_NF4) { scale = __uint_as_float(b.a); offset = 0.f; }
    else q4k_scale(b.h, o & 7, scale, offset);
}

// Adds piece o (codes w[r] of rows row[r], r < R) times each activation row b < nb into acc[r][b]; the activation block
// is loaded once for all R rows.
//   Q8_0: Σ ≈ d_w · d_x · Σ q_w q_x over the piece's 16 elements (block o / 2).
//   Q4_0: d_w · (d_x · Σ u q_x − 8 · d_x Σ q_x), u the 4-bit codes.
//   Q4_K: (d · sc_k) · d_x · Σ u q_x − (dmin · m_k) · d_x Σ q_x, sub-block k = o % 8 of super-block o / 8 (header: fp16 d,
//         fp16 dmin, the 12 packed 6-bit scale/min bytes).
//   int4: s_g · (d_x · Σ u q_x − z_g · d_x Σ q_x), group g = 32·o / group, z = 8 when symmetric.
//   Q5_K: as Q4_K with 5-bit codes u (q5k_words).
//   Q6_K: d_x · (d · sc_2o · Σ_{j<16} (u_j − 32) q_x,j + d · sc_2o+1 · Σ_{j≥16} (u_j − 32) q_x,j), two dp4a chains because
//         the two 16-element halves of the piece have their own scales; d of super-block o / 8.
//   int8: s_g · d_x · Σ (u − z_g) q_x over the piece's 16 codes (half of block o / 2), group g = 16·o / group, z = 128
//         when symmetric; computed as Σ (u − 128) q_x − (z_g − 128) Σ q_x, u − 128 being the code byte with its top
//         bit flipped (a signed byte), so the whole inner sum is exact in integers.
//   nf4/fp4: piece o is half h = o % 2 of 64-element block k = o / 2: its byte j holds element 64k + 16h + j (low nibble,
//         activation block 2k) and 64k + 32 + 16h + j (high nibble, block 2k + 1). absmax_k · (d_x,2k · Σ I_lo q_x +
//         d_x,2k+1 · Σ I_hi q_x), I = 256 · h + l the code value's table integer (see CB_SCALE), both sums exact in
//         integers; the row's total is divided by CB_SCALE once at the end.
template <int FMT, int NB, int R> __device__ __forceinline__ void pieces(int o, const uint4* w, const ScaleBits<FMT>* sb,
    const QAct& a, int nb, float (*acc)[NB], const uint4& th, const uint4& tl)
{
    float scale[R], offset[R];
#pragma unroll
    for (int r = 0; r < R; r++) piece_scale<FMT>(sb[r], o, scale[r], offset[r]);
    if constexpr (FMT == FMT_INT8)
    {
        uint4 ws[R];
        int zp[R];
#pragma unroll
        for (int r = 0; r < R; r++)
        {
            ws[r] = make_uint4(w[r].x ^ 0x80808080u, w[r].y ^ 0x80808080u, w[r].z ^ 0x80808080u, w[r].w ^ 0x80808080u);
            zp[r] = (int)sb[r].b - 128;
        }
#pragma unroll
        for (int b = 0; b < NB; b++)
        {
            if (b >= nb) break;
            uint4 x = ldq(a.q + b * a.qs + o * 16);
            float dx = a.d[b * a.ds + (o >> 1)];
#pragma unroll
            for (int r = 0; r < R; r++)
            {
                int t = dot4(ws[r], x, 0);
                if (zp[r] != 0) t -= zp[r] * dot4(make_uint4(0x01010101u, 0x01010101u, 0x01010101u, 0x01010101u), x, 0);
                acc[r][b] += scale[r] * dx * (float)t;
            }
        }
    }
    else if constexpr (FMT == FMT_NF4)
    {
        // Table digits of every code: hd/ld[r][k] for word k's low nibbles, hs/ls[r][4 + k] for its high nibbles.
        u32 hd[R][8], ld[R][8];
#pragma unroll
        for (int r = 0; r < R; r++)
        {
            u32 ww[4] = { w[r].x, w[r].y, w[r].z, w[r].w };
#pragma unroll
            for (int k = 0; k < 4; k++)
            {
                u32 idx = ww[k] & 0x77777777u, sel = ((ww[k] >> 1) & 0x44444444u) | 0x32103210u;
                lookup16(idx, sel, th, hd[r][k], hd[r][4 + k]);
                lookup16(idx, sel, tl, ld[r][k], ld[r][4 + k]);
            }
        }
        int blk = (o >> 1) * 2;
#pragma unroll
        for (int b = 0; b < NB; b++)
        {
            if (b >= nb) break;
            const i8* xq = a.q + b * a.qs + (o >> 1) * 64 + (o & 1) * 16;
            uint4 xl = ldq(xq), xh = ldq(xq + 32);
            float dl = a.d[b * a.ds + blk], dh = a.d[b * a.ds + blk + 1];
            int xlv[4] = { (int)xl.x, (int)xl.y, (int)xl.z, (int)xl.w }, xhv[4] = { (int)xh.x, (int)xh.y, (int)xh.z, (int)xh.w };
#pragma unroll
            for (int r = 0; r < R; r++)
            {
                int sh = 0, sl = 0, th2 = 0, tl2 = 0;
#pragma unroll
                for (int k = 0; k < 4; k++)
                {
                    sh = dp4a((int)hd[r][k], xlv[k], sh); sl = dp4a_us(ld[r][k], xlv[k], sl);
                    th2 = dp4a((int)hd[r][4 + k], xhv[k], th2); tl2 = dp4a_us(ld[r][4 + k], xhv[k], tl2);
                }
                acc[r][b] += scale[r] * (dl * (float)(sh * 256 + sl) + dh * (float)(th2 * 256 + tl2));
            }
        }
    }
    else if constexpr (FMT == FMT_Q8_0)
    {
#pragma unroll
        for (int b = 0; b < NB; b++)
        {
            if (b >= nb) break;
            uint4 x = ldq(a.q + b * a.qs + o * 16);
            float dx = a.d[b * a.ds + (o >> 1)];
#pragma unroll
            for (int r = 0; r < R; r++) acc[r][b] += scale[r] * dx * (float)dot4(w[r], x, 0);
        }
    }
    else
    {
        // One 32-element block per piece: codes 0..15 in lo, 16..31 in hi (Q4_0, Q4_K, int4: the nibbles; Q5_K: with the
        // fifth bits; Q6_K: as signed bytes q − 32, each half with its own scale).
        uint4 lo[R], hi[R];
#pragma unroll
        for (int r = 0; r < R; r++)
        {
            if constexpr (FMT == FMT_Q5_K) q5k_words(w[r], sb[r].f, lo[r], hi[r]);
            else if constexpr (FMT == FMT_Q6_K) q6k_words(w[r], sb[r].hb, lo[r], hi[r]);
            else { lo[r] = lo_nib(w[r]); hi[r] = hi_nib(w[r]); }
        }
#pragma unroll
        for (int b = 0; b < NB; b++)
        {
            if (b >= nb) break;
            const i8* xq = a.q + b * a.qs + o * 32;
            uint4 x0 = ldq(xq), x1 = ldq(xq + 16);
            float dx = a.d[b * a.ds + o], sx = FMT == FMT_Q6_K ? 0.f : a.s[b * a.ds + o];
#pragma unroll
            for (int r = 0; r < R; r++)
            {
                if constexpr (FMT == FMT_Q6_K)
                    acc[r][b] += dx * (scale[r] * (float)dot4(lo[r], x0, 0) + offset[r] * (float)dot4(hi[r], x1, 0));
                else
                    acc[r][b] += scale[r] * dx * (float)dot8(lo[r], hi[r], x0, x1, 0) - offset[r] * sx;
            }
        }
    }
}

// Each warp computes R rows: rows R·w .. R·w + R − 1 (GLU: R = 2, rows w and w + rows of a [gate; up] matrix, written as
// SiLU(gate) · up), so every activation block loaded serves R weight rows. Each lane issues U independent 16-byte
// weight loads per row before using any (a warp keeps R · U · 512 bytes in flight); the last round is guarded, so a row
// whose piece count is not a multiple of 32·U still has all its loads in flight together.
template <int FMT, int NB, bool GLU, int R, int U, bool PIPE> __device__ void gemvq_body(const Mat& m, int rows, const QAct& a, float* y, int ys, int nb, int add)
{
    static_assert(!GLU || R == 2, "GLU pairs a gate row with its up row");
    int lane = threadIdx.x & 31;
    int w = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int row[R];
    if constexpr (GLU) { if (w >= rows) return; row[0] = w; row[1] = w + rows; }
    else
    {
        if (R * w >= rows) return;
#pragma unroll
        for (int r = 0; r < R; r++) row[r] = min(R * w + r, rows - 1);
    }
    int gshift = -1;
    if constexpr (FMT == FMT_INT4 || FMT == FMT_INT8) gshift = (m.group & (m.group - 1)) == 0 ? __ffs(m.group) - 1 : -1;
    int n = FMT == FMT_Q8_0 || FMT == FMT_NF4 ? 2 * m.units : m.units;
    uint4 th = make_uint4(0u, 0u, 0u, 0u), tl = th;
    if constexpr (FMT == FMT_NF4) { th = __ldg(reinterpret_cast<const uint4*>(m.z)); tl = __ldg(reinterpret_cast<const uint4*>(m.z) + 1); }
    float acc[R][NB];
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int b = 0; b < NB; b++) acc[r][b] = 0.f;
    // The weights are never written by the kernels before this one on the stream, so the first round is loaded before
    // waiting for them (PDL_ENTER): under programmatic launch its DRAM latency overlaps the previous kernel's tail.
    uint4 wt[U][R];
    ScaleBits<FMT> sc[U][R];
    auto load = [&](uint4 (&w)[U][R], ScaleBits<FMT> (&s)[U][R], int o)
    {
#pragma unroll
        for (int i = 0; i < U; i++)
#pragma unroll
            for (int r = 0; r < R; r++)
                w[i][r] = o + 32 * i < n ? ldw(m.q + row[r] * m.qStride + (long long)(o + 32 * i) * 16) : make_uint4(0u, 0u, 0u, 0u);
#pragma unroll
        for (int i = 0; i < U; i++)
#pragma unroll
            for (int r = 0; r < R; r++)
                if (o + 32 * i < n) s[i][r] = load_scale<FMT>(m, row[r], o + 32 * i, gshift);
    };
    load(wt, sc, lane);
    PDL_ENTER();
    for (int o = lane; o < n; o += 32 * U)
    {
        // PIPE: a software pipeline, the next round's loads are issued before this round's arithmetic.
        uint4 wn[U][R];
        ScaleBits<FMT> sn[U][R];
        if constexpr (PIPE) load(wn, sn, o + 32 * U);
        else if (o != lane) load(wt, sc, o);
#pragma unroll
        for (int i = 0; i < U; i++)
            if (o + 32 * i < n) pieces<FMT, NB, R>(o + 32 * i, wt[i], sc[i], a, nb, acc, th, tl);
        if constexpr (PIPE)
#pragma unroll
            for (int i = 0; i < U; i++)
#pragma unroll
                for (int r = 0; r < R; r++) { wt[i][r] = wn[i][r]; sc[i][r] = sn[i][r]; }
    }
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int b = 0; b < NB; b++) acc[r][b] = FMT == FMT_NF4 ? warp_sum(acc[r][b]) / CB_SCALE : warp_sum(acc[r][b]);
    if (lane == 0)
    {
#pragma unroll
        for (int b = 0; b < NB; b++)
        {
            if (b >= nb) break;
            float* yb = y + (long long)b * ys;
            if constexpr (GLU) yb[row[0]] = acc[0][b] / (1.f + expf(-acc[0][b])) * acc[1][b];
            else
#pragma unroll
                for (int r = 0; r < R; r++)
                    if (r == 0 || row[r] != row[r - 1]) yb[row[r]] = add ? yb[row[r]] + acc[r][b] : acc[r][b];
        }
    }
}

// Batch 1, measured on an H100 (gpu bench --gemv, 8192² and 4096×14336, CUDA graph with programmatic launch): occupancy
// decides, so the kernels are held to 64 registers (8 resident blocks of 4 warps per SM) with one row per warp; a software
// pipeline of 2 loads per lane (the next round's codes and scale bits in flight while this round multiplies) measured
// Q4_K 64.6 → 76.1%, int4 75.5 → 79.2% of peak over 4 loads without it; 3 pipelined loads, or 4 without the pipeline at 6
// blocks per SM, were 5-15% slower, as was sharing activation loads between two rows per warp. The GLU kernel pairs its two
// rows by construction and keeps 1 pipelined load per row. Batch tiles (4, 16) keep 4 loads and two rows.
#define GEMVQ_ENTRY(NAME, FMT, NB, R, U, MINB, PIPE, GLU_U)                                                         \
    extern "C" __global__ void __launch_bounds__(128, MINB) NAME##_##NB(Mat m, int rows, QAct a, float* y, int ys, int nb, int add) \
    { gemvq_body<FMT, NB, false, R, U, PIPE>(m, rows, a, y, ys, nb, add); }                                           \
    extern "C" __global__ void __launch_bounds__(128, MINB) NAME##_glu_##NB(Mat m, int rows, QAct a, float* y, int ys, int nb, int add) \
    { gemvq_body<FMT, NB, true, 2, GLU_U, PIPE>(m, rows, a, y, ys, nb, add); }
// Batch-1 shape (rows per warp, loads per lane, resident blocks, pipelined, GLU loads per lane), overridable for tuning
// (QUANTSERVE_KERNEL_DEFINES).
#ifndef GEMVQ_R1
#define GEMVQ_R1 1
#endif
#ifndef GEMVQ_U1
#define GEMVQ_U1 2
#endif
#ifndef GEMVQ_MINB1
#define GEMVQ_MINB1 8
#endif
#ifndef GEMVQ_PIPE1
#define GEMVQ_PIPE1 true
#endif
#ifndef GEMVQ_GLU_U1
#define GEMVQ_GLU_U1 1
#endif
// NF4/FP4 do several times the integer work per weight byte of int4 (two table lookups per nibble) and need more
// registers: held to 6 resident blocks (85 registers) they measured 62.7 / 61.0% of peak (8192² / 4096×14336) against
// 60.3 / 59.6% at 8 blocks, 63.3 / 56.5% with one load per lane and 57.3 / 55.5% with four at 4 blocks.
#ifndef GEMVQ_NF4_U1
#define GEMVQ_NF4_U1 GEMVQ_U1
#endif
#ifndef GEMVQ_NF4_MINB1
#define GEMVQ_NF4_MINB1 6
#endif
#define DEFINE_GEMVQ(NAME, FMT) GEMVQ_ENTRY(NAME, FMT, 1, GEMVQ_R1, (FMT == FMT_NF4 ? GEMVQ_NF4_U1 : GEMVQ_U1), \
    (FMT == FMT_NF4 ? GEMVQ_NF4_MINB1 : GEMVQ_MINB1), GEMVQ_PIPE1, GEMVQ_GLU_U1) \
    GEMVQ_ENTRY(NAME, FMT, 4, 2, 4, 1, false, 4) GEMVQ_ENTRY(NAME, FMT, 16, 2, 4, 1, false, 4)

DEFINE_GEMVQ(gemvq_q8_0, FMT_Q8_0)
DEFINE_GEMVQ(gemvq_q4_0, FMT_Q4_0)
DEFINE_GEMVQ(gemvq_q4_k, FMT_Q4_K)
DEFINE_GEMVQ(gemvq_int4, FMT_INT4)
DEFINE_GEMVQ(gemvq_q5_k, FMT_Q5_K)
DEFINE_GEMVQ(gemvq_q6_k, FMT_Q6_K)
DEFINE_GEMVQ(gemvq_int8, FMT_INT8)
DEFINE_GEMVQ(gemvq_nf4, FMT_NF4)

// RMSNorm fused with the int8 quantization above: y[t] = w ⊙ x[r] / sqrt(mean(x[r]²) + eps) for r = rows[t] (null: t),
// written as F32 (columns < dim) and, per block of 32 of the padded width qs, as codes q = round_half_even(y / d) with
// d = amax / 127 and d · Σq — the same values rmsnorm followed by quantize_q8 produce. Grid (T), 256 threads.
extern "C" __global__ void rmsnorm_q8(const float* x, int xs, const int* rows, const float* w, float* y, int ys, int dim, float eps,
    i8* q, int qs, float* d, float* s, int ds)
{
    PDL_ENTER();
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
