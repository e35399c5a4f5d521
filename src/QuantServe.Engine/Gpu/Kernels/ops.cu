// The non-GEMV steps of the Llama forward pass. Activation rows of T tokens are row-major with a padded stride.
#define NEG_INF __int_as_float(0xff800000)

__device__ __forceinline__ float h2f_ops(unsigned short h)
{
    float f;
    asm("{ .reg .f16 t; mov.b16 t, %1; cvt.f32.f16 %0, t; }" : "=f"(f) : "h"(h));
    return f;
}

__device__ __forceinline__ float warp_sum_ops(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max_ops(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Block-wide sum (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
__device__ float block_sum(float v)
{
    __shared__ float part[32];
    __shared__ float total;
    v = warp_sum_ops(v);
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = v;
    __syncthreads();
    if (threadIdx.x < 32)
    {
        float s = threadIdx.x < (blockDim.x >> 5) ? part[threadIdx.x] : 0.f;
        s = warp_sum_ops(s);
        if (threadIdx.x == 0) total = s;
    }
    __syncthreads();
    float r = total;
    __syncthreads();
    return r;
}

// x[t][c] = table[tokens[t]][c] (F32 when f16 == 0, else F16 rows), for c < dim. Grid (T), any block size.
extern "C" __global__ void embed(const void* table, int f16, long long rowStride, const int* tokens, float* x, int xs, int dim)
{
    PDL_ENTER();
    int t = blockIdx.x;
    long long base = (long long)tokens[t] * rowStride;
    for (int c = threadIdx.x; c < dim; c += blockDim.x)
        x[(long long)t * xs + c] = f16 ? h2f_ops(reinterpret_cast<const unsigned short*>(table)[base + c]) : reinterpret_cast<const float*>(table)[base + c];
}

// RMSNorm: y[t] = w ⊙ x[t] · 1/sqrt(mean(x[t]²) + eps). Grid (T) with rows[t] choosing the source row (null: row t).
extern "C" __global__ void rmsnorm(const float* x, int xs, const int* rows, const float* w, float* y, int ys, int dim, float eps)
{
    PDL_ENTER();
    int t = blockIdx.x;
    const float* xr = x + (long long)(rows ? rows[t] : t) * xs;
    float ss = 0.f;
    for (int c = threadIdx.x; c < dim; c += blockDim.x) ss += xr[c] * xr[c];
    ss = block_sum(ss);
    float scale = 1.f / sqrtf(ss / dim + eps);
    for (int c = threadIdx.x; c < dim; c += blockDim.x) y[(long long)t * ys + c] = xr[c] * w[c] * scale;
}

// y[t][c] += bias[c] for c < n. Grid (T).
extern "C" __global__ void add_bias(float* y, int ys, const float* bias, int n)
{
    PDL_ENTER();
    for (int c = threadIdx.x; c < n; c += blockDim.x) y[(long long)blockIdx.x * ys + c] += bias[c];
}

// gate[t][c] = SiLU(gate[t][c]) · up[t][c], SiLU(g) = g / (1 + e^-g). Grid (T).
extern "C" __global__ void swiglu(float* gate, const float* up, int s, int n)
{
    PDL_ENTER();
    long long o = (long long)blockIdx.x * s;
    for (int c = threadIdx.x; c < n; c += blockDim.x)
    {
        float g = gate[o + c];
        gate[o + c] = g / (1.f + expf(-g)) * up[o + c];
    }
}

// RoPE on q (heads) and k (kvHeads) of token t at positions[t] with the tabulated cos/sin [positions][headDim/2],
// interleaved pairs (2i, 2i+1) or neox pairs (i, i + headDim/2); then k and v are stored at that position of the token's
// cache: kc[t] / vc[t] point at layer l's [capacity][kvDim] block. Grid (T).
extern "C" __global__ void rope_store(float* q, int qs, float* k, float* v, int ks, const int* positions,
    const float* cosT, const float* sinT, int heads, int kvHeads, int headDim, int neox,
    float* const* kc, float* const* vc, long long layerOffset)
{
    PDL_ENTER();
    int t = blockIdx.x, half = headDim >> 1, pos = positions[t];
    const float* cs = cosT + (long long)pos * half;
    const float* sn = sinT + (long long)pos * half;
    int pairsQ = heads * half, pairs = (heads + kvHeads) * half;
    for (int p = threadIdx.x; p < pairs; p += blockDim.x)
    {
        float* vec = p < pairsQ ? q + (long long)t * qs : k + (long long)t * ks;
        int pp = p < pairsQ ? p : p - pairsQ;
        int h = pp / half, i = pp % half;
        int ia = neox ? h * headDim + i : h * headDim + 2 * i;
        int ib = neox ? ia + half : ia + 1;
        float a = vec[ia], b = vec[ib];
        vec[ia] = a * cs[i] - b * sn[i];
        vec[ib] = a * sn[i] + b * cs[i];
    }
    __syncthreads();
    int kvDim = kvHeads * headDim;
    float* kd = kc[t] + layerOffset + (long long)pos * kvDim;
    float* vd = vc[t] + layerOffset + (long long)pos * kvDim;
    for (int c = threadIdx.x; c < kvDim; c += blockDim.x)
    {
        kd[c] = k[(long long)t * ks + c];
        vd[c] = v[(long long)t * ks + c];
    }
}

// Causal grouped-query attention, one block of 128 threads per (token, head) — grid (heads, T). Keys and values of
// positions 0..positions[t] come from the token's cache. Positions are processed in tiles of ATT_TILE with an online
// softmax (running max and sum, accumulators rescaled per tile), so any context length fits fixed shared memory:
// s_j = q·k_j · scale, out = Σ softmax(s)_j v_j. headDim ≤ 256.
#define ATT_TILE 1024
extern "C" __global__ void attention(const float* q, int qs, float* out, int os, const int* positions,
    const float* const* kc, const float* const* vc, long long layerOffset, int heads, int kvHeads, int headDim, float scale)
{
    PDL_ENTER();
    __shared__ float qv[256];
    __shared__ float sc[ATT_TILE];
    __shared__ float red[1024];
    __shared__ float wmax[4];
    int h = blockIdx.x, t = blockIdx.y;
    int kvh = h / (heads / kvHeads), kvDim = kvHeads * headDim;
    int n = positions[t] + 1;
    const float* keys = kc[t] + layerOffset + kvh * headDim;
    const float* vals = vc[t] + layerOffset + kvh * headDim;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    for (int d = threadIdx.x; d < headDim; d += blockDim.x) qv[d] = q[(long long)t * qs + h * headDim + d];
    __syncthreads();
    // Output dims: thread handles dims d = threadIdx.x % headDim (and + 128 when headDim > 128); position groups split the rest.
    int groups = headDim >= 128 ? 1 : 128 / headDim;
    int span = headDim >= 128 ? 128 : headDim;
    int dA = threadIdx.x % span, grp = threadIdx.x / span;
    float accA = 0.f, accB = 0.f, runMax = NEG_INF, runSum = 0.f;
    for (int start = 0; start < n; start += ATT_TILE)
    {
        int len = min(ATT_TILE, n - start);
#pragma unroll 4
        for (int j = warp; j < len; j += 4)
        {
            const float* kj = keys + (long long)(start + j) * kvDim;
            float s = 0.f;
            for (int d = lane; d < headDim; d += 32) s += qv[d] * kj[d];
            s = warp_sum_ops(s);
            if (lane == 0) sc[j] = s * scale;
        }
        __syncthreads();
        float m = NEG_INF;
        for (int j = threadIdx.x; j < len; j += blockDim.x) m = fmaxf(m, sc[j]);
        m = warp_max_ops(m);
        if (lane == 0) wmax[warp] = m;
        __syncthreads();
        float tileMax = fmaxf(fmaxf(wmax[0], wmax[1]), fmaxf(wmax[2], wmax[3]));
        float newMax = fmaxf(runMax, tileMax);
        float correction = expf(runMax - newMax);
        __syncthreads();
        float part = 0.f;
        for (int j = threadIdx.x; j < len; j += blockDim.x) { float e = expf(sc[j] - newMax); sc[j] = e; part += e; }
        part = block_sum(part); // synchronises, so sc[] is complete
        runSum = runSum * correction + part;
        accA *= correction;
        accB *= correction;
        runMax = newMax;
        if (grp < groups)
#pragma unroll 8
            for (int j = grp; j < len; j += groups)
            {
                const float* vj = vals + (long long)(start + j) * kvDim;
                float a = sc[j];
                accA += a * vj[dA];
                if (headDim > 128 && dA + 128 < headDim) accB += a * vj[dA + 128];
            }
        __syncthreads();
    }
    // Combine the position groups and normalise.
    if (grp < groups) red[grp * span + dA] = accA;
    __syncthreads();
    if (threadIdx.x < min(headDim, 128))
    {
        float s = 0.f;
        for (int g = 0; g < groups; g++) s += red[g * span + threadIdx.x];
        out[(long long)t * os + h * headDim + threadIdx.x] = s / runSum;
        if (headDim > 128 && threadIdx.x + 128 < headDim) out[(long long)t * os + h * headDim + threadIdx.x + 128] = accB / runSum;
    }
}

// Split-K ("flash-decoding") attention, part 1. The cache positions 0..n−1 (n = positions[t] + 1) of (token t, head h)
// are cut into `splits` = min(maxSplits, ⌈n / minChunk⌉) chunks of ⌈n / splits⌉, one block each, so a single decoding
// token still spreads over many SMs; the split count follows each token's own length, on the device, so a captured graph
// stays valid as the context grows. Block (h · maxSplits + sp, t) writes for its chunk C the partial
//   m = max_{j∈C} s_j,  l = Σ_{j∈C} e^{s_j − m},  a[d] = Σ_{j∈C} e^{s_j − m} v_j[d],  s_j = scale · q·k_j
// to part[((t · heads + h) · maxSplits + sp) · (headDim + 2)] as (m, l, a[0..headDim)). Positions are scored one per
// thread in tiles of 128 with an online softmax across tiles. headDim ≤ 256 and a multiple of 4; 128 threads.
#define SPLIT_TILE 128
extern "C" __global__ void __launch_bounds__(128) attention_split(const float* q, int qs, float* part, const int* positions,
    const float* const* kc, const float* const* vc, long long layerOffset, int heads, int kvHeads, int headDim, float scale,
    int maxSplits, int minChunk)
{
    PDL_ENTER();
    __shared__ __align__(16) float qv[256];
    __shared__ float pr[SPLIT_TILE];
    __shared__ float red[256];
    __shared__ float wred[4];
    int h = blockIdx.x / maxSplits, sp = blockIdx.x % maxSplits, t = blockIdx.y;
    int n = positions[t] + 1;
    int splits = min(maxSplits, (n + minChunk - 1) / minChunk);
    if (sp >= splits) return;
    int chunk = (n + splits - 1) / splits;
    int start = sp * chunk, end = min(n, start + chunk);
    int kvh = h / (heads / kvHeads), kvDim = kvHeads * headDim;
    const float* keys = kc[t] + layerOffset + kvh * headDim;
    const float* vals = vc[t] + layerOffset + kvh * headDim;
    int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    for (int d = tid; d < headDim; d += blockDim.x) qv[d] = q[(long long)t * qs + h * headDim + d] * scale;
    __syncthreads();
    int span = headDim >= 128 ? 128 : headDim;
    int groups = 128 / span;
    int dA = tid % span, grp = tid / span;
    float accA = 0.f, accB = 0.f, runMax = NEG_INF, runSum = 0.f;
    for (int t0 = start; t0 < end; t0 += SPLIT_TILE)
    {
        int len = min(SPLIT_TILE, end - t0);
        float sc = NEG_INF;
        if (tid < len)
        {
            const float4* k4 = reinterpret_cast<const float4*>(keys + (long long)(t0 + tid) * kvDim);
            const float4* q4 = reinterpret_cast<const float4*>(qv);
            float s0 = 0.f, s1 = 0.f;
            int d4 = headDim >> 2, i = 0;
#pragma unroll 4
            for (; i + 1 < d4; i += 2)
            {
                float4 a = k4[i], b = k4[i + 1], x = q4[i], y = q4[i + 1];
                s0 += a.x * x.x + a.y * x.y + a.z * x.z + a.w * x.w;
                s1 += b.x * y.x + b.y * y.y + b.z * y.z + b.w * y.w;
            }
            if (i < d4) { float4 a = k4[i], x = q4[i]; s0 += a.x * x.x + a.y * x.y + a.z * x.z + a.w * x.w; }
            sc = s0 + s1;
        }
        float m = warp_max_ops(sc);
        if (lane == 0) wred[warp] = m;
        __syncthreads();
        float tileMax = fmaxf(fmaxf(wred[0], wred[1]), fmaxf(wred[2], wred[3]));
        float newMax = fmaxf(runMax, tileMax);
        float e = tid < len ? expf(sc - newMax) : 0.f;
        pr[tid] = e;
        float part_ = block_sum(e); // synchronises: pr[] complete, wred[] free again
        float correction = expf(runMax - newMax);
        runSum = runSum * correction + part_;
        accA *= correction;
        accB *= correction;
        runMax = newMax;
        if (grp < groups)
        {
            const float* vbase = vals + (long long)t0 * kvDim;
#pragma unroll 8
            for (int j = grp; j < len; j += groups)
            {
                const float* vj = vbase + (long long)j * kvDim;
                float a = pr[j];
                accA += a * vj[dA];
                if (headDim > 128 && dA + 128 < headDim) accB += a * vj[dA + 128];
            }
        }
        __syncthreads();
    }
    float* out = part + ((long long)(t * heads + h) * maxSplits + sp) * (headDim + 2);
    if (grp < groups) red[grp * span + dA] = accA;
    __syncthreads();
    if (tid < span)
    {
        float s = 0.f;
        for (int g = 0; g < groups; g++) s += red[g * span + tid];
        out[2 + tid] = s;
        if (headDim > 128 && tid + 128 < headDim) out[2 + 128 + tid] = accB;
    }
    if (tid == 0) { out[0] = runMax; out[1] = runSum; }
}

// Split-K attention, part 2: out[t][h·headDim + d] = Σ_s e^{m_s − M} a_s[d] / Σ_s e^{m_s − M} l_s, M = max_s m_s, over the
// splits part 1 used for token t. When qc is not null (headDim a multiple of 32) the row is also quantized for the integer-
// dot GEMV that follows, exactly as quantize_q8 would (per 32: d = amax / 127, round-half-even codes, d · Σq).
// Grid (heads, T), ⌈headDim / 32⌉ · 32 threads.
extern "C" __global__ void attention_combine(const float* part, float* out, int os, const int* positions, int heads, int headDim,
    int maxSplits, int minChunk, i8* qc, int qcs, float* qd, float* qsum, int qds)
{
    PDL_ENTER();
    int h = blockIdx.x, t = blockIdx.y, d = threadIdx.x;
    int n = positions[t] + 1;
    int splits = min(maxSplits, (n + minChunk - 1) / minChunk);
    const float* base = part + (long long)(t * heads + h) * maxSplits * (headDim + 2);
    float M = NEG_INF;
    for (int s = 0; s < splits; s++) M = fmaxf(M, base[s * (headDim + 2)]);
    float L = 0.f, o = 0.f;
    for (int s = 0; s < splits; s++)
    {
        const float* ps = base + s * (headDim + 2);
        float w = expf(ps[0] - M);
        L += w * ps[1];
        if (d < headDim) o += w * ps[2 + d];
    }
    o = d < headDim ? o / L : 0.f;
    int col = h * headDim + d;
    if (d < headDim) out[(long long)t * os + col] = o;
    if (qc != 0 && (headDim & 31) == 0)
    {
        float amax = fabsf(o);
        amax = warp_max_ops(amax);
        float inv = amax > 0.f ? 127.f / amax : 0.f;
        int code = __float2int_rn(o * inv);
        qc[(long long)t * qcs + col] = (i8)code;
        int sum = code;
#pragma unroll
        for (int k = 16; k > 0; k >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, k);
        if ((d & 31) == 0)
        {
            qd[(long long)t * qds + col / 32] = amax / 127.f;
            qsum[(long long)t * qds + col / 32] = amax / 127.f * (float)sum;
        }
    }
}

// Greedy sampling: ids[r] = argmax_c logits[r][c] (lowest index on ties). Grid (rows), 1024 threads.
extern "C" __global__ void argmax_rows(const float* logits, int ls, int n, int* ids)
{
    PDL_ENTER();
    __shared__ float bv[32];
    __shared__ int bi[32];
    const float* row = logits + (long long)blockIdx.x * ls;
    float best = NEG_INF;
    int idx = 0x7fffffff;
    for (int c = threadIdx.x; c < n; c += blockDim.x)
    {
        float v = row[c];
        if (v > best) { best = v; idx = c; }
    }
    for (int o = 16; o > 0; o >>= 1)
    {
        float ov = __shfl_xor_sync(0xffffffffu, best, o);
        int oi = __shfl_xor_sync(0xffffffffu, idx, o);
        if (ov > best || (ov == best && oi < idx)) { best = ov; idx = oi; }
    }
    if ((threadIdx.x & 31) == 0) { bv[threadIdx.x >> 5] = best; bi[threadIdx.x >> 5] = idx; }
    __syncthreads();
    if (threadIdx.x == 0)
    {
        for (int w = 1; w < (int)(blockDim.x >> 5); w++)
            if (bv[w] > best || (bv[w] == best && bi[w] < idx)) { best = bv[w]; idx = bi[w]; }
        ids[blockIdx.x] = idx == 0x7fffffff ? 0 : idx;
    }
}

// Top-k sampling: the k largest logits of row r (k ≤ 64, found by k block-wide arg-max passes that skip those already
// taken), softmax over them at temperature temp, then the token whose cumulative probability first exceeds uniforms[r].
// Grid (rows), 1024 threads.
extern "C" __global__ void topk_sample(const float* logits, int ls, int n, int k, float temp, const float* uniforms, int* ids)
{
    PDL_ENTER();
    __shared__ float bv[32];
    __shared__ int bi[32];
    __shared__ float topv[64];
    __shared__ int topi[64];
    const float* row = logits + (long long)blockIdx.x * ls;
    for (int step = 0; step < k; step++)
    {
        float best = NEG_INF;
        int idx = 0x7fffffff;
        for (int c = threadIdx.x; c < n; c += blockDim.x)
        {
            bool taken = false;
            for (int s = 0; s < step; s++) taken |= topi[s] == c;
            float v = row[c];
            if (!taken && (v > best || (v == best && c < idx))) { best = v; idx = c; }
        }
        for (int o = 16; o > 0; o >>= 1)
        {
            float ov = __shfl_xor_sync(0xffffffffu, best, o);
            int oi = __shfl_xor_sync(0xffffffffu, idx, o);
            if (ov > best || (ov == best && oi < idx)) { best = ov; idx = oi; }
        }
        if ((threadIdx.x & 31) == 0) { bv[threadIdx.x >> 5] = best; bi[threadIdx.x >> 5] = idx; }
        __syncthreads();
        if (threadIdx.x == 0)
        {
            for (int w = 1; w < (int)(blockDim.x >> 5); w++)
                if (bv[w] > best || (bv[w] == best && bi[w] < idx)) { best = bv[w]; idx = bi[w]; }
            topv[step] = best;
            topi[step] = idx;
        }
        __syncthreads();
    }
    if (threadIdx.x == 0)
    {
        float sum = 0.f;
        for (int s = 0; s < k; s++) sum += expf((topv[s] - topv[0]) / temp);
        float target = uniforms[blockIdx.x] * sum, run = 0.f;
        int pick = topi[k - 1];
        for (int s = 0; s < k; s++)
        {
            run += expf((topv[s] - topv[0]) / temp);
            if (run > target) { pick = topi[s]; break; }
        }
        ids[blockIdx.x] = pick;
    }
}
