// Causal grouped-query attention for prompt chunks, flash-attention style: one block of 256 threads per (head, query
// tile of up to 64 consecutive tokens of one sequence), four threads per query each owning every fourth float4 of the
// head's dims. Keys and values of positions 0 .. (last query's position) stream from the sequence's F32 cache through
// shared memory in tiles of PA_KT; per tile each query's scores s_j = (q / sqrt(d)) . k_j (masked to j <= its position)
// update a running max m and sum l, and the output accumulator is rescaled once per tile: with m' = max(m, max_j s_j),
// acc = acc * e^(m - m') + sum_j e^(s_j - m') v_j, l = l * e^(m - m') + sum_j e^(s_j - m'); out = acc / l. F32 throughout,
// so it agrees with the per-token decode kernel to rounding. tiles[2i], tiles[2i + 1] = first row and row count of tile
// i in the piece; rows of one tile share a cache (kc / vc of the first row) and have consecutive positions.
// headDim <= 128 and a multiple of 4.

#define PA_KT 32

extern "C" __global__ void __launch_bounds__(256) prefill_attention(const float* q, int qs, float* out, int os, const int* positions,
    const float* const* kc, const float* const* vc, long long layerOffset, const int* tiles, int heads, int kvHeads, int headDim, float scale)
{
    PDL_ENTER();
    __shared__ float4 ksh[PA_KT][32];
    __shared__ float4 vsh[PA_KT][32];
    const float negInf = __int_as_float(0xff800000);
    int h = blockIdx.x, row0 = tiles[2 * blockIdx.y], count = tiles[2 * blockIdx.y + 1];
    int qi = threadIdx.x >> 2, part = threadIdx.x & 3;
    bool active = qi < count;
    int row = row0 + min(qi, count - 1);     // idle threads shadow the last query so every shuffle has its partners
    int pos = positions[row], last = positions[row0 + count - 1];
    int kvh = h / (heads / kvHeads), kvDim = kvHeads * headDim, chunks = headDim >> 2;
    const float* keys = kc[row0] + layerOffset + kvh * headDim;
    const float* vals = vc[row0] + layerOffset + kvh * headDim;
    float4 qv[8], acc[8];
#pragma unroll
    for (int i = 0; i < 8; i++)
    {
        int c = part + 4 * i;
        float4 v = c < chunks ? *reinterpret_cast<const float4*>(q + (long long)row * qs + h * headDim + 4 * c) : make_float4(0.f, 0.f, 0.f, 0.f);
        qv[i] = make_float4(v.x * scale, v.y * scale, v.z * scale, v.w * scale);
        acc[i] = make_float4(0.f, 0.f, 0.f, 0.f);
    }
    float m = negInf, l = 0.f;
    for (int j0 = 0; j0 <= last; j0 += PA_KT)
    {
        int n = min(PA_KT, last + 1 - j0);
        for (int e = threadIdx.x; e < PA_KT * chunks; e += blockDim.x)
        {
            int j = e / chunks, c = e - j * chunks;
            bool ok = j < n;
            ksh[j][c] = ok ? *reinterpret_cast<const float4*>(keys + (long long)(j0 + j) * kvDim + 4 * c) : make_float4(0.f, 0.f, 0.f, 0.f);
            vsh[j][c] = ok ? *reinterpret_cast<const float4*>(vals + (long long)(j0 + j) * kvDim + 4 * c) : make_float4(0.f, 0.f, 0.f, 0.f);
        }
        __syncthreads();
        float s[PA_KT], tmax = negInf;
#pragma unroll
        for (int j = 0; j < PA_KT; j++)
        {
            float d = 0.f;
#pragma unroll
            for (int i = 0; i < 8; i++)
            {
                int c = part + 4 * i;
                if (c < chunks)
                {
                    float4 k = ksh[j][c];
                    d += qv[i].x * k.x + qv[i].y * k.y + qv[i].z * k.z + qv[i].w * k.w;
                }
            }
            d += __shfl_xor_sync(0xffffffffu, d, 1);
            d += __shfl_xor_sync(0xffffffffu, d, 2);
            s[j] = j0 + j <= pos ? d : negInf;
            tmax = fmaxf(tmax, s[j]);
        }
        // Key 0 is visible to every query, so m is finite after the first tile and a fully masked later tile leaves it.
        float mnew = fmaxf(m, tmax), corr = expf(m - mnew);
        l *= corr;
#pragma unroll
        for (int i = 0; i < 8; i++) { acc[i].x *= corr; acc[i].y *= corr; acc[i].z *= corr; acc[i].w *= corr; }
#pragma unroll
        for (int j = 0; j < PA_KT; j++)
        {
            float p = expf(s[j] - mnew);
            l += p;
#pragma unroll
            for (int i = 0; i < 8; i++)
            {
                int c = part + 4 * i;
                if (c < chunks)
                {
                    float4 v = vsh[j][c];
                    acc[i].x += p * v.x; acc[i].y += p * v.y; acc[i].z += p * v.z; acc[i].w += p * v.w;
                }
            }
        }
        m = mnew;
        __syncthreads();
    }
    if (!active) return;
    float inv = 1.f / l;
#pragma unroll
    for (int i = 0; i < 8; i++)
    {
        int c = part + 4 * i;
        if (c < chunks)
            *reinterpret_cast<float4*>(out + (long long)row * os + h * headDim + 4 * c) = make_float4(acc[i].x * inv, acc[i].y * inv, acc[i].z * inv, acc[i].w * inv);
    }
}
