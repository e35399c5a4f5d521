// Quantizers' heavy loops: ggml's k-quant scale searches for Q2_K..Q6_K (one thread per 256-weight super-block) and GPTQ's Hessian
// accumulation, column-by-column block quantization and lazy trailing update.
//
// The k-quant searches must produce the CPU's bytes exactly, so every float operation here is the same IEEE operation in
// the same order as KQuantSearch / Q4KFormat / Q5KFormat / Q6KFormat: explicit __fmul_rn / __fadd_rn / __fdiv_rn /
// __fsqrt_rn, which the compiler never contracts into an FMA or reassociates (the CPU side uses separate mul and add).
// GPTQ's updates use __dmul_rn / __dadd_rn for the same reason: w_j ← w_j + (−e)·U_ij in the CPU's column order.

typedef unsigned char u8;
typedef signed char i8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

#define QZ_MUL(a, b) __fmul_rn((a), (b))
#define QZ_ADD(a, b) __fadd_rn((a), (b))
#define QZ_SUB(a, b) __fsub_rn((a), (b))
#define QZ_DIV(a, b) __fdiv_rn((a), (b))
#define QZ_EPS 1e-15f

__device__ __forceinline__ int qz_nearest_int(float x)
{
    float v = __fadd_rn(x, 12582912.f);
    return (__float_as_int(v) & 0x007fffff) - 0x00400000;
}

__device__ __forceinline__ u16 qz_f32_to_f16(float f)
{
    u16 h;
    asm("{ .reg .f16 t; cvt.rn.f16.f32 t, %1; mov.b16 %0, t; }" : "=h"(h) : "f"(f));
    return h;
}

__device__ __forceinline__ float qz_f16_to_f32(u16 h)
{
    float f;
    asm("{ .reg .f16 t; mov.b16 t, %1; cvt.f32.f16 %0, t; }" : "=f"(f) : "h"(h));
    return f;
}

__device__ __forceinline__ int qz_clamp(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

// make_qkx2_quants (use_mad: |error| instead of error²).
__device__ float qz_make_qkx2(int n, int nmax, const float* x, const float* weights, u8* L, float* the_min, u8* Laux,
                              float rmin, float rdelta, int nstep, bool use_mad)
{
    float mn = x[0], mx = x[0];
    float sum_w = weights[0];
    float sum_x = QZ_MUL(sum_w, x[0]);
    for (int i = 1; i < n; ++i)
    {
        if (x[i] < mn) mn = x[i];
        if (x[i] > mx) mx = x[i];
        float w = weights[i];
        sum_w = QZ_ADD(sum_w, w);
        sum_x = QZ_ADD(sum_x, QZ_MUL(w, x[i]));
    }
    if (mn > 0) mn = 0;
    if (mx == mn)
    {
        for (int i = 0; i < n; ++i) L[i] = 0;
        *the_min = -mn;
        return 0.f;
    }
    float iscale = QZ_DIV((float)nmax, QZ_SUB(mx, mn));
    float scale = QZ_DIV(1.f, iscale);
    float best_error = 0;
    for (int i = 0; i < n; ++i)
    {
        int l = qz_nearest_int(QZ_MUL(iscale, QZ_SUB(x[i], mn)));
        L[i] = (u8)qz_clamp(l, 0, nmax);
        float diff = QZ_SUB(QZ_ADD(QZ_MUL(scale, (float)L[i]), mn), x[i]);
        diff = use_mad ? fabsf(diff) : QZ_MUL(diff, diff);
        best_error = QZ_ADD(best_error, QZ_MUL(weights[i], diff));
    }
    if (nstep < 1)
    {
        *the_min = -mn;
        return scale;
    }
    for (int step = 0; step <= nstep; ++step)
    {
        iscale = QZ_DIV(QZ_ADD(QZ_ADD(rmin, QZ_MUL(rdelta, (float)step)), (float)nmax), QZ_SUB(mx, mn));
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i)
        {
            int l = qz_clamp(qz_nearest_int(QZ_MUL(iscale, QZ_SUB(x[i], mn))), 0, nmax);
            Laux[i] = (u8)l;
            float w = weights[i], fl = (float)l;
            sum_l = QZ_ADD(sum_l, QZ_MUL(w, fl));
            sum_l2 = QZ_ADD(sum_l2, QZ_MUL(QZ_MUL(w, fl), fl));
            sum_xl = QZ_ADD(sum_xl, QZ_MUL(QZ_MUL(w, fl), x[i]));
        }
        float D = QZ_SUB(QZ_MUL(sum_w, sum_l2), QZ_MUL(sum_l, sum_l));
        if (D > 0)
        {
            float this_scale = QZ_DIV(QZ_SUB(QZ_MUL(sum_w, sum_xl), QZ_MUL(sum_x, sum_l)), D);
            float this_min = QZ_DIV(QZ_SUB(QZ_MUL(sum_l2, sum_x), QZ_MUL(sum_l, sum_xl)), D);
            if (this_min > 0)
            {
                this_min = 0;
                this_scale = QZ_DIV(sum_xl, sum_l2);
            }
            float cur_error = 0;
            for (int i = 0; i < n; ++i)
            {
                float diff = QZ_SUB(QZ_ADD(QZ_MUL(this_scale, (float)Laux[i]), this_min), x[i]);
                diff = use_mad ? fabsf(diff) : QZ_MUL(diff, diff);
                cur_error = QZ_ADD(cur_error, QZ_MUL(weights[i], diff));
            }
            if (cur_error < best_error)
            {
                for (int i = 0; i < n; ++i) L[i] = Laux[i];
                best_error = cur_error;
                scale = this_scale;
                mn = this_min;
            }
        }
    }
    *the_min = -mn;
    return scale;
}

// make_qkx3_quants with explicit weights and use_mad = false.
__device__ float qz_make_qkx3(int n, int nmax, const float* x, const float* weights, u8* L, float* the_min, u8* Laux,
                              float rmin, float rdelta, int nstep)
{
    float mn = x[0], mx = x[0];
    float sum_w = weights[0];
    float sum_x = QZ_MUL(sum_w, x[0]);
    for (int i = 1; i < n; ++i)
    {
        if (x[i] < mn) mn = x[i];
        if (x[i] > mx) mx = x[i];
        float w = weights[i];
        sum_w = QZ_ADD(sum_w, w);
        sum_x = QZ_ADD(sum_x, QZ_MUL(w, x[i]));
    }
    if (mn > 0) mn = 0;
    if (mx <= mn)
    {
        for (int i = 0; i < n; ++i) L[i] = 0;
        *the_min = -mn;
        return 0.f;
    }
    float iscale = QZ_DIV((float)nmax, QZ_SUB(mx, mn));
    float scale = QZ_DIV(1.f, iscale);
    float best_mad = 0;
    for (int i = 0; i < n; ++i)
    {
        int l = qz_nearest_int(QZ_MUL(iscale, QZ_SUB(x[i], mn)));
        L[i] = (u8)qz_clamp(l, 0, nmax);
        float diff = QZ_SUB(QZ_ADD(QZ_MUL(scale, (float)L[i]), mn), x[i]);
        diff = QZ_MUL(diff, diff);
        best_mad = QZ_ADD(best_mad, QZ_MUL(weights[i], diff));
    }
    if (nstep < 1)
    {
        *the_min = -mn;
        return scale;
    }
    for (int step = 0; step <= nstep; ++step)
    {
        iscale = QZ_DIV(QZ_ADD(QZ_ADD(rmin, QZ_MUL(rdelta, (float)step)), (float)nmax), QZ_SUB(mx, mn));
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i)
        {
            float v = QZ_MUL(iscale, QZ_SUB(x[i], mn));
            int l = v > 0 ? qz_nearest_int(fminf(v, (float)nmax)) : 0;
            Laux[i] = (u8)l;
            float w = weights[i], fl = (float)l;
            sum_l = QZ_ADD(sum_l, QZ_MUL(w, fl));
            sum_l2 = QZ_ADD(sum_l2, QZ_MUL(QZ_MUL(w, fl), fl));
            sum_xl = QZ_ADD(sum_xl, QZ_MUL(QZ_MUL(w, fl), x[i]));
        }
        float D = QZ_SUB(QZ_MUL(sum_w, sum_l2), QZ_MUL(sum_l, sum_l));
        if (D > 0)
        {
            float this_scale = QZ_DIV(QZ_SUB(QZ_MUL(sum_w, sum_xl), QZ_MUL(sum_x, sum_l)), D);
            float this_min = QZ_DIV(QZ_SUB(QZ_MUL(sum_l2, sum_x), QZ_MUL(sum_l, sum_xl)), D);
            if (this_min > 0)
            {
                this_min = 0;
                this_scale = QZ_DIV(sum_xl, sum_l2);
            }
            float mad = 0;
            for (int i = 0; i < n; ++i)
            {
                float diff = QZ_SUB(QZ_ADD(QZ_MUL(this_scale, (float)Laux[i]), this_min), x[i]);
                diff = QZ_MUL(diff, diff);
                mad = QZ_ADD(mad, QZ_MUL(weights[i], diff));
            }
            if (mad < best_mad)
            {
                for (int i = 0; i < n; ++i) L[i] = Laux[i];
                best_mad = mad;
                scale = this_scale;
                mn = this_min;
            }
        }
    }
    *the_min = -mn;
    return scale;
}

// make_qp_quants.
__device__ float qz_make_qp(int n, int nmax, const float* x, u8* L, const float* qw)
{
    float mx = 0;
    for (int i = 0; i < n; ++i) mx = fmaxf(mx, x[i]);
    if (mx < QZ_EPS)
    {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.f;
    }
    float iscale = QZ_DIV((float)nmax, mx);
    for (int i = 0; i < n; ++i) L[i] = (u8)qz_nearest_int(QZ_MUL(iscale, x[i]));
    float scale = QZ_DIV(1.f, iscale);
    float best_mse = 0;
    for (int i = 0; i < n; ++i)
    {
        float diff = QZ_SUB(x[i], QZ_MUL(scale, (float)L[i]));
        best_mse = QZ_ADD(best_mse, QZ_MUL(QZ_MUL(qw[i], diff), diff));
    }
    for (int step = -4; step <= 4; ++step)
    {
        if (step == 0) continue;
        float iscale_is = QZ_DIV(QZ_ADD(QZ_MUL(0.1f, (float)step), (float)nmax), mx);
        float scale_is = QZ_DIV(1.f, iscale_is);
        float mse = 0;
        for (int i = 0; i < n; ++i)
        {
            int l = min(nmax, qz_nearest_int(QZ_MUL(iscale_is, x[i])));
            float diff = QZ_SUB(x[i], QZ_MUL(scale_is, (float)l));
            mse = QZ_ADD(mse, QZ_MUL(QZ_MUL(qw[i], diff), diff));
        }
        if (mse < best_mse)
        {
            best_mse = mse;
            iscale = iscale_is;
        }
    }
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i)
    {
        int l = min(nmax, qz_nearest_int(QZ_MUL(iscale, x[i])));
        L[i] = (u8)l;
        float w = qw[i], fl = (float)l;
        sumlx = QZ_ADD(sumlx, QZ_MUL(QZ_MUL(w, x[i]), fl));
        suml2 = QZ_ADD(suml2, QZ_MUL(QZ_MUL(w, fl), fl));
    }
    for (int itry = 0; itry < 5; ++itry)
    {
        int n_changed = 0;
        for (int i = 0; i < n; ++i)
        {
            float w = qw[i], li = (float)L[i];
            float slx = QZ_SUB(sumlx, QZ_MUL(QZ_MUL(w, x[i]), li));
            float sl2 = QZ_SUB(suml2, QZ_MUL(QZ_MUL(w, li), li));
            if (slx > 0 && sl2 > 0)
            {
                int new_l = min(nmax, qz_nearest_int(QZ_DIV(QZ_MUL(x[i], sl2), slx)));
                if (new_l != L[i])
                {
                    float fn = (float)new_l;
                    slx = QZ_ADD(slx, QZ_MUL(QZ_MUL(w, x[i]), fn));
                    sl2 = QZ_ADD(sl2, QZ_MUL(QZ_MUL(w, fn), fn));
                    if (QZ_MUL(QZ_MUL(slx, slx), suml2) > QZ_MUL(QZ_MUL(sumlx, sumlx), sl2))
                    {
                        L[i] = (u8)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        ++n_changed;
                    }
                }
            }
        }
        if (n_changed == 0) break;
    }
    return suml2 > 0.0f ? QZ_DIV(sumlx, suml2) : 0.0f;
}

// make_qx_quants with rmse_type 1 (weights qw, or x² when qw is null); levels stored offset by nmax.
__device__ float qz_make_qx(int n, int nmax, const float* x, i8* L, const float* qw)
{
    float mx = 0, amax = 0;
    for (int i = 0; i < n; ++i)
    {
        float ax = fabsf(x[i]);
        if (ax > amax) { amax = ax; mx = x[i]; }
    }
    if (amax < QZ_EPS)
    {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.f;
    }
    float iscale = QZ_DIV((float)-nmax, mx);
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i)
    {
        int l = qz_clamp(qz_nearest_int(QZ_MUL(iscale, x[i])), -nmax, nmax - 1);
        L[i] = (i8)(l + nmax);
        float w = qw ? qw[i] : QZ_MUL(x[i], x[i]), fl = (float)l;
        sumlx = QZ_ADD(sumlx, QZ_MUL(QZ_MUL(w, x[i]), fl));
        suml2 = QZ_ADD(suml2, QZ_MUL(QZ_MUL(w, fl), fl));
    }
    float scale = suml2 != 0 ? QZ_DIV(sumlx, suml2) : 0.f;
    float best = QZ_MUL(scale, sumlx);
    for (int step = -9; step <= 9; ++step)
    {
        if (step == 0) continue;
        iscale = QZ_DIV(-QZ_ADD((float)nmax, QZ_MUL(0.1f, (float)step)), mx);
        sumlx = suml2 = 0;
        for (int i = 0; i < n; ++i)
        {
            int l = qz_clamp(qz_nearest_int(QZ_MUL(iscale, x[i])), -nmax, nmax - 1);
            float w = qw ? qw[i] : QZ_MUL(x[i], x[i]), fl = (float)l;
            sumlx = QZ_ADD(sumlx, QZ_MUL(QZ_MUL(w, x[i]), fl));
            suml2 = QZ_ADD(suml2, QZ_MUL(QZ_MUL(w, fl), fl));
        }
        if (suml2 > 0 && QZ_MUL(sumlx, sumlx) > QZ_MUL(best, suml2))
        {
            for (int i = 0; i < n; ++i)
            {
                int l = qz_nearest_int(QZ_MUL(iscale, x[i]));
                L[i] = (i8)(nmax + qz_clamp(l, -nmax, nmax - 1));
            }
            scale = QZ_DIV(sumlx, suml2);
            best = QZ_MUL(scale, sumlx);
        }
    }
    return scale;
}

// make_q3_quants with do_rmse: start from round(-nmax·x/max), then up to 5 coordinate-descent passes (w = x²); levels
// stored offset by nmax.
__device__ float qz_make_q3(int n, int nmax, const float* x, i8* L)
{
    float mx = 0, amax = 0;
    for (int i = 0; i < n; ++i)
    {
        float ax = fabsf(x[i]);
        if (ax > amax) { amax = ax; mx = x[i]; }
    }
    if (amax < QZ_EPS)
    {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.f;
    }
    float iscale = QZ_DIV((float)-nmax, mx);
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i)
    {
        int l = qz_clamp(qz_nearest_int(QZ_MUL(iscale, x[i])), -nmax, nmax - 1);
        L[i] = (i8)l;
        float w = QZ_MUL(x[i], x[i]), fl = (float)l;
        sumlx = QZ_ADD(sumlx, QZ_MUL(QZ_MUL(w, x[i]), fl));
        suml2 = QZ_ADD(suml2, QZ_MUL(QZ_MUL(w, fl), fl));
    }
    for (int itry = 0; itry < 5; ++itry)
    {
        int n_changed = 0;
        for (int i = 0; i < n; ++i)
        {
            float w = QZ_MUL(x[i], x[i]), li = (float)L[i];
            float slx = QZ_SUB(sumlx, QZ_MUL(QZ_MUL(w, x[i]), li));
            if (slx > 0)
            {
                float sl2 = QZ_SUB(suml2, QZ_MUL(QZ_MUL(w, li), li));
                int new_l = qz_clamp(qz_nearest_int(QZ_DIV(QZ_MUL(x[i], sl2), slx)), -nmax, nmax - 1);
                if (new_l != L[i])
                {
                    float fn = (float)new_l;
                    slx = QZ_ADD(slx, QZ_MUL(QZ_MUL(w, x[i]), fn));
                    sl2 = QZ_ADD(sl2, QZ_MUL(QZ_MUL(w, fn), fn));
                    if (sl2 > 0 && QZ_MUL(QZ_MUL(slx, slx), suml2) > QZ_MUL(QZ_MUL(sumlx, sumlx), sl2))
                    {
                        L[i] = (i8)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        ++n_changed;
                    }
                }
            }
        }
        if (n_changed == 0) break;
    }
    for (int i = 0; i < n; ++i) L[i] = (i8)(L[i] + nmax);
    return suml2 > 0.0f ? QZ_DIV(sumlx, suml2) : 0.0f;
}

__device__ void qz_pack_scales(u8* scales, const u8* ls, const u8* lm)
{
    for (int j = 0; j < 12; ++j) scales[j] = 0;
    for (int j = 0; j < 8; ++j)
    {
        if (j < 4)
        {
            scales[j] = ls[j];
            scales[j + 4] = lm[j];
        }
        else
        {
            scales[j + 4] = (u8)((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
            scales[j - 4] |= (u8)((ls[j] >> 4) << 6);
            scales[j] |= (u8)((lm[j] >> 4) << 6);
        }
    }
}

__device__ __forceinline__ void qz_scale_min_k4(int j, const u8* q, u8* d, u8* m)
{
    if (j < 4)
    {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    }
    else
    {
        *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

// The sub-block search shared by Q4_K and Q5_K: fills L (256 levels), the 12 scale bytes and the two FP16 scales.
// qw null: quantize_row_q4_K_ref / q5_K_ref; otherwise the imatrix path (quantize_row_q*_K_impl).
__device__ void qz_k4_search(const float* x, const float* qw, int nmax, float rmin, float rdelta, int nstep,
                             u8* L, u8* scales12, u16* d_out, u16* dmin_out)
{
    u8 laux[32];
    float weights[32], mins[8], scales[8], sw[8];
    u8 ls[8], lm[8];
    if (qw == nullptr)
    {
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 8; ++j)
        {
            float sum_x2 = 0;
            for (int l = 0; l < 32; ++l) sum_x2 = QZ_ADD(sum_x2, QZ_MUL(x[32 * j + l], x[32 * j + l]));
            float av_x = __fsqrt_rn(QZ_DIV(sum_x2, 32.f));
            for (int l = 0; l < 32; ++l) weights[l] = QZ_ADD(av_x, fabsf(x[32 * j + l]));
            scales[j] = qz_make_qkx2(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], laux, rmin, rdelta, nstep, false);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        float inv_scale = max_scale > 0 ? QZ_DIV(63.f, max_scale) : 0.f;
        float inv_min = max_min > 0 ? QZ_DIV(63.f, max_min) : 0.f;
        for (int j = 0; j < 8; ++j)
        {
            u8 a = (u8)qz_nearest_int(QZ_MUL(inv_scale, scales[j]));
            u8 b = (u8)qz_nearest_int(QZ_MUL(inv_min, mins[j]));
            ls[j] = a < 63 ? a : 63;
            lm[j] = b < 63 ? b : 63;
        }
        qz_pack_scales(scales12, ls, lm);
        *d_out = qz_f32_to_f16(QZ_DIV(max_scale, 63.f));
        *dmin_out = qz_f32_to_f16(QZ_DIV(max_min, 63.f));
    }
    else
    {
        float sum_x2 = 0;
        for (int l = 0; l < 256; ++l) sum_x2 = QZ_ADD(sum_x2, QZ_MUL(x[l], x[l]));
        float sigma2 = QZ_DIV(QZ_MUL(2.f, sum_x2), 256.f);
        for (int j = 0; j < 8; ++j)
        {
            for (int l = 0; l < 32; ++l)
                weights[l] = QZ_MUL(qw[32 * j + l], __fsqrt_rn(QZ_ADD(sigma2, QZ_MUL(x[32 * j + l], x[32 * j + l]))));
            float sumw = 0;
            for (int l = 0; l < 32; ++l) sumw = QZ_ADD(sumw, weights[l]);
            sw[j] = sumw;
            scales[j] = qz_make_qkx3(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], laux, -0.9f, 0.05f, 36);
        }
        float d_block = qz_make_qp(8, 63, scales, ls, sw);
        float m_block = qz_make_qp(8, 63, mins, lm, sw);
        for (int j = 0; j < 8; ++j)
        {
            if (ls[j] > 63) ls[j] = 63;
            if (lm[j] > 63) lm[j] = 63;
        }
        qz_pack_scales(scales12, ls, lm);
        *d_out = qz_f32_to_f16(d_block);
        *dmin_out = qz_f32_to_f16(m_block);
    }
    for (int j = 0; j < 8; ++j)
    {
        u8 sc, m;
        qz_scale_min_k4(j, scales12, &sc, &m);
        float d = QZ_MUL(qz_f16_to_f32(*d_out), (float)sc);
        if (d == 0) continue;
        float dm = QZ_MUL(qz_f16_to_f32(*dmin_out), (float)m);
        for (int ii = 0; ii < 32; ++ii)
        {
            int l = qz_nearest_int(QZ_DIV(QZ_ADD(x[32 * j + ii], dm), d));
            L[32 * j + ii] = (u8)qz_clamp(l, 0, nmax);
        }
    }
}

// Block b of the batch: x + 256·b; its importance weights (one imatrix row shared by all rows) at (b mod bpr)·256.
__device__ __forceinline__ const float* qz_block_weights(const float* qw, int b, int blocks_per_row)
{
    return qw ? qw + (size_t)(b % blocks_per_row) * 256 : nullptr;
}

// Q4_K: 144 bytes per block = d, dmin (FP16), 12 scale bytes, 128 nibble bytes.
extern "C" __global__ void kq_quantize_q4k(const float* __restrict__ x, const float* __restrict__ qw, int blocks,
                                           int blocks_per_row, u8* __restrict__ out)
{
    int b = blockIdx.x * blockDim.x + threadIdx.x;
    if (b >= blocks) return;
    const float* xb = x + (size_t)b * 256;
    u8 L[256];
    u8 sc[12];
    u16 d, dmin;
    qz_k4_search(xb, qz_block_weights(qw, b, blocks_per_row), 15, -1.f, 0.1f, 20, L, sc, &d, &dmin);
    u8* y = out + (size_t)b * 144;
    y[0] = (u8)d; y[1] = (u8)(d >> 8); y[2] = (u8)dmin; y[3] = (u8)(dmin >> 8);
    for (int j = 0; j < 12; ++j) y[4 + j] = sc[j];
    u8* q = y + 16;
    for (int j = 0; j < 256; j += 64)
    {
        for (int l = 0; l < 32; ++l) q[l] = (u8)(L[j + l] | (L[j + l + 32] << 4));
        q += 32;
    }
}

// Q5_K: 176 bytes per block = d, dmin, 12 scale bytes, 32 high-bit bytes, 128 nibble bytes.
extern "C" __global__ void kq_quantize_q5k(const float* __restrict__ x, const float* __restrict__ qw, int blocks,
                                           int blocks_per_row, u8* __restrict__ out)
{
    int b = blockIdx.x * blockDim.x + threadIdx.x;
    if (b >= blocks) return;
    const float* xb = x + (size_t)b * 256;
    u8 L[256];
    u8 sc[12];
    u16 d, dmin;
    qz_k4_search(xb, qz_block_weights(qw, b, blocks_per_row), 31, -0.5f, 0.1f, 15, L, sc, &d, &dmin);
    u8* y = out + (size_t)b * 176;
    y[0] = (u8)d; y[1] = (u8)(d >> 8); y[2] = (u8)dmin; y[3] = (u8)(dmin >> 8);
    for (int j = 0; j < 12; ++j) y[4 + j] = sc[j];
    u8 qh[32];
    for (int j = 0; j < 32; ++j) qh[j] = 0;
    u8* ql = y + 48;
    u8 m1 = 1, m2 = 2;
    for (int n = 0; n < 256; n += 64)
    {
        for (int j = 0; j < 32; ++j)
        {
            int l1 = L[n + j];
            if (l1 > 15) { l1 -= 16; qh[j] |= m1; }
            int l2 = L[n + j + 32];
            if (l2 > 15) { l2 -= 16; qh[j] |= m2; }
            ql[j] = (u8)(l1 | (l2 << 4));
        }
        m1 <<= 2;
        m2 <<= 2;
        ql += 32;
    }
    for (int j = 0; j < 32; ++j) y[16 + j] = qh[j];
}

// Q6_K: 210 bytes per block = 128 low-nibble bytes, 64 high-bit bytes, 16 int8 scales, d (FP16).
extern "C" __global__ void kq_quantize_q6k(const float* __restrict__ x, const float* __restrict__ qw, int blocks,
                                           int blocks_per_row, u8* __restrict__ out)
{
    int b = blockIdx.x * blockDim.x + threadIdx.x;
    if (b >= blocks) return;
    const float* xb = x + (size_t)b * 256;
    const float* w = qz_block_weights(qw, b, blocks_per_row);
    u8* y = out + (size_t)b * 210;
    i8 L[256];
    float scales[16];
    float max_scale = 0, max_abs_scale = 0;
    for (int ib = 0; ib < 16; ++ib)
    {
        float scale = qz_make_qx(16, 32, xb + 16 * ib, L + 16 * ib, w ? w + 16 * ib : nullptr);
        scales[ib] = scale;
        float a = fabsf(scale);
        if (a > max_abs_scale) { max_abs_scale = a; max_scale = scale; }
    }
    if (max_abs_scale < QZ_EPS)
    {
        for (int j = 0; j < 210; ++j) y[j] = 0;
        return;
    }
    float iscale = QZ_DIV(-128.f, max_scale);
    u16 d = qz_f32_to_f16(QZ_DIV(1.f, iscale));
    i8 sc[16];
    for (int ib = 0; ib < 16; ++ib) sc[ib] = (i8)min(127, qz_nearest_int(QZ_MUL(iscale, scales[ib])));
    float df = qz_f16_to_f32(d);
    for (int j = 0; j < 16; ++j)
    {
        float dd = QZ_MUL(df, (float)sc[j]);
        if (dd == 0) continue;
        for (int ii = 0; ii < 16; ++ii)
        {
            int l = qz_nearest_int(QZ_DIV(xb[16 * j + ii], dd));
            L[16 * j + ii] = (i8)(qz_clamp(l, -32, 31) + 32);
        }
    }
    u8* ql = y;
    u8* qh = y + 128;
    for (int j = 0; j < 256; j += 128)
    {
        for (int l = 0; l < 32; ++l)
        {
            int q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF, q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
            ql[l] = (u8)(q1 | (q3 << 4));
            ql[l + 32] = (u8)(q2 | (q4 << 4));
            qh[l] = (u8)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
        }
        ql += 64;
        qh += 32;
    }
    for (int ib = 0; ib < 16; ++ib) y[192 + ib] = (u8)sc[ib];
    y[208] = (u8)d;
    y[209] = (u8)(d >> 8);
}

// Q2_K: 84 bytes per block = 16 scale bytes (low nibble scale, high nibble min), 64 bytes of 2-bit quants, d, dmin.
extern "C" __global__ void kq_quantize_q2k(const float* __restrict__ x, const float* __restrict__ qw, int blocks,
                                           int blocks_per_row, u8* __restrict__ out)
{
    int b = blockIdx.x * blockDim.x + threadIdx.x;
    if (b >= blocks) return;
    const float* xb = x + (size_t)b * 256;
    const float* w = qz_block_weights(qw, b, blocks_per_row);
    u8 L[256], laux[16], sc[16];
    float weights[16], mins[16], scales[16];
    u16 d, dmin;
    if (w == nullptr)
    {
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 16; ++j)
        {
            for (int l = 0; l < 16; ++l) weights[l] = fabsf(xb[16 * j + l]);
            scales[j] = qz_make_qkx2(16, 3, xb + 16 * j, weights, L + 16 * j, &mins[j], laux, -0.5f, 0.1f, 15, true);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        if (max_scale > 0)
        {
            float iscale = QZ_DIV(15.f, max_scale);
            for (int j = 0; j < 16; ++j) sc[j] = (u8)qz_nearest_int(QZ_MUL(iscale, scales[j]));
            d = qz_f32_to_f16(QZ_DIV(max_scale, 15.f));
        }
        else
        {
            for (int j = 0; j < 16; ++j) sc[j] = 0;
            d = qz_f32_to_f16(0.f);
        }
        if (max_min > 0)
        {
            float iscale = QZ_DIV(15.f, max_min);
            for (int j = 0; j < 16; ++j) sc[j] |= (u8)(qz_nearest_int(QZ_MUL(iscale, mins[j])) << 4);
            dmin = qz_f32_to_f16(QZ_DIV(max_min, 15.f));
        }
        else dmin = qz_f32_to_f16(0.f);
    }
    else
    {
        float sw[16];
        u8 ls[16], lm[16];
        float sumx2 = 0;
        for (int j = 0; j < 256; ++j) sumx2 = QZ_ADD(sumx2, QZ_MUL(xb[j], xb[j]));
        float sigma2 = QZ_DIV(sumx2, 256.f);
        for (int j = 0; j < 16; ++j)
        {
            for (int l = 0; l < 16; ++l) weights[l] = QZ_MUL(w[16 * j + l], __fsqrt_rn(QZ_ADD(sigma2, QZ_MUL(xb[16 * j + l], xb[16 * j + l]))));
            float sum = 0;
            for (int l = 0; l < 16; ++l) sum = QZ_ADD(sum, weights[l]);
            sw[j] = sum;
            scales[j] = qz_make_qkx3(16, 3, xb + 16 * j, weights, L + 16 * j, &mins[j], laux, -0.9f, 0.05f, 36);
        }
        float dm = qz_make_qp(16, 15, scales, ls, sw);
        float mm = qz_make_qp(16, 15, mins, lm, sw);
        d = qz_f32_to_f16(dm);
        dmin = qz_f32_to_f16(mm);
        for (int j = 0; j < 16; ++j) sc[j] = (u8)(ls[j] | (lm[j] << 4));
    }
    float df = qz_f16_to_f32(d), mf = qz_f16_to_f32(dmin);
    for (int j = 0; j < 16; ++j)
    {
        float dd = QZ_MUL(df, (float)(sc[j] & 0xF));
        if (dd == 0) continue;
        float dm = QZ_MUL(mf, (float)(sc[j] >> 4));
        for (int ii = 0; ii < 16; ++ii)
        {
            int l = qz_nearest_int(QZ_DIV(QZ_ADD(xb[16 * j + ii], dm), dd));
            L[16 * j + ii] = (u8)qz_clamp(l, 0, 3);
        }
    }
    u8* y = out + (size_t)b * 84;
    for (int j = 0; j < 16; ++j) y[j] = sc[j];
    for (int j = 0; j < 256; j += 128)
        for (int l = 0; l < 32; ++l)
            y[16 + j / 4 + l] = (u8)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
    y[80] = (u8)d; y[81] = (u8)(d >> 8); y[82] = (u8)dmin; y[83] = (u8)(dmin >> 8);
}

__device__ void qz_q3_store_scale(u8* scales, int j, int l)
{
    if (j < 8) scales[j] = (u8)(l & 0xF);
    else scales[j - 8] |= (u8)((l & 0xF) << 4);
    l >>= 4;
    scales[j % 4 + 8] |= (u8)(l << (2 * (j / 4)));
}

// Q3_K: 110 bytes per block = 32 high-bit mask bytes, 64 bytes of low 2 bits, 12 bytes of 6-bit scales, d.
extern "C" __global__ void kq_quantize_q3k(const float* __restrict__ x, const float* __restrict__ qw, int blocks,
                                           int blocks_per_row, u8* __restrict__ out)
{
    int b = blockIdx.x * blockDim.x + threadIdx.x;
    if (b >= blocks) return;
    const float* xb = x + (size_t)b * 256;
    const float* w = qz_block_weights(qw, b, blocks_per_row);
    i8 L[256];
    float scales[16];
    u8 sc[12];
    for (int j = 0; j < 12; ++j) sc[j] = 0;
    u16 d;
    if (w == nullptr)
    {
        float max_scale = 0, amax = 0;
        for (int j = 0; j < 16; ++j)
        {
            scales[j] = qz_make_q3(16, 4, xb + 16 * j, L + 16 * j);
            float a = fabsf(scales[j]);
            if (a > amax) { amax = a; max_scale = scales[j]; }
        }
        if (max_scale != 0)
        {
            float iscale = QZ_DIV(-32.f, max_scale);
            for (int j = 0; j < 16; ++j)
            {
                int l = (i8)qz_nearest_int(QZ_MUL(iscale, scales[j]));
                l = qz_clamp(l, -32, 31) + 32;
                qz_q3_store_scale(sc, j, l);
            }
            d = qz_f32_to_f16(QZ_DIV(1.f, iscale));
        }
        else d = qz_f32_to_f16(0.f);
    }
    else
    {
        float weight[16], sw[16];
        i8 ls[16];
        float sumx2 = 0;
        for (int j = 0; j < 256; ++j) sumx2 = QZ_ADD(sumx2, QZ_MUL(xb[j], xb[j]));
        float sigma2 = QZ_DIV(QZ_MUL(2.f, sumx2), 256.f);
        for (int j = 0; j < 16; ++j)
        {
            for (int l = 0; l < 16; ++l) weight[l] = QZ_MUL(w[16 * j + l], __fsqrt_rn(QZ_ADD(sigma2, QZ_MUL(xb[16 * j + l], xb[16 * j + l]))));
            float sumw = 0;
            for (int l = 0; l < 16; ++l) sumw = QZ_ADD(sumw, weight[l]);
            sw[j] = sumw;
            scales[j] = qz_make_qx(16, 4, xb + 16 * j, L + 16 * j, weight);
        }
        float d_block = qz_make_qx(16, 32, scales, ls, sw);
        for (int j = 0; j < 16; ++j) qz_q3_store_scale(sc, j, ls[j]);
        d = qz_f32_to_f16(d_block);
    }
    float df = qz_f16_to_f32(d);
    for (int j = 0; j < 16; ++j)
    {
        int s6 = j < 8 ? sc[j] & 0xF : sc[j - 8] >> 4;
        s6 = (s6 | (((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
        float dd = QZ_MUL(df, (float)(i8)s6);
        if (dd == 0) continue;
        for (int ii = 0; ii < 16; ++ii)
        {
            int l = qz_nearest_int(QZ_DIV(xb[16 * j + ii], dd));
            L[16 * j + ii] = (i8)(qz_clamp(l, -4, 3) + 4);
        }
    }
    u8* y = out + (size_t)b * 110;
    u8 hmask[32];
    for (int j = 0; j < 32; ++j) hmask[j] = 0;
    int m = 0;
    u8 hm = 1;
    for (int j = 0; j < 256; ++j)
    {
        if (L[j] > 3)
        {
            hmask[m] |= hm;
            L[j] = (i8)(L[j] - 4);
        }
        if (++m == 32) { m = 0; hm = (u8)(hm << 1); }
    }
    for (int j = 0; j < 32; ++j) y[j] = hmask[j];
    for (int j = 0; j < 256; j += 128)
        for (int l = 0; l < 32; ++l)
            y[32 + j / 4 + l] = (u8)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
    for (int j = 0; j < 12; ++j) y[96 + j] = sc[j];
    y[108] = (u8)d;
    y[109] = (u8)(d >> 8);
}

// ---- GPTQ ----

// Hessian accumulation, the CPU's GptqHessian.Add bit for bit: for the upper-triangle 32×32 tiles (bi ≤ bj) of X^T X over
// `tokens` rows of X (row-major, n wide), each entry of the double accumulator H (n × n) gains x_t,i · x_t,j token by token
// in order. A product of two floats is exact in double, so the only rounding is one per addition in that fixed order.
// Block of 256 threads seen as 32×8; each thread owns 4 entries (rows ty, ty+8, ty+16, ty+24 of the tile, column tx).
extern "C" __global__ void gptq_hessian_add(const float* __restrict__ X, int tokens, int n, double* __restrict__ H)
{
    int bi = blockIdx.y, bj = blockIdx.x;
    if (bi > bj) return;
    __shared__ float xi[32][33];
    __shared__ float xj[32][33];
    int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;
    int i0 = bi * 32, j0 = bj * 32;
    int j = j0 + tx;
    double acc[4];
#pragma unroll
    for (int r = 0; r < 4; ++r)
    {
        int i = i0 + ty + 8 * r;
        acc[r] = (i < n && j < n && i <= j) ? H[(size_t)i * n + j] : 0.0;
    }
    for (int t0 = 0; t0 < tokens; t0 += 32)
    {
        for (int k = ty; k < 32; k += 8)
        {
            int t = t0 + k;
            xi[k][tx] = (t < tokens && i0 + tx < n) ? X[(size_t)t * n + i0 + tx] : 0.f;
            xj[k][tx] = (t < tokens && j0 + tx < n) ? X[(size_t)t * n + j0 + tx] : 0.f;
        }
        __syncthreads();
        int kn = min(32, tokens - t0);
        for (int k = 0; k < kn; ++k)
        {
            double b = (double)xj[k][tx];
#pragma unroll
            for (int r = 0; r < 4; ++r) acc[r] = __dadd_rn(acc[r], __dmul_rn((double)xi[k][ty + 8 * r], b));
        }
        __syncthreads();
    }
    if (j >= n) return;
#pragma unroll
    for (int r = 0; r < 4; ++r)
    {
        int i = i0 + ty + 8 * r;
        if (i < n && i <= j) H[(size_t)i * n + j] = acc[r];
    }
}

// float16 rounding of a double (round to nearest even, straight from double as .NET's (Half)double does; overflow → inf).
__device__ double qz_round_half(double v)
{
    double a = fabs(v);
    if (a == 0.0 || !(a == a)) return v;
    int e;
    frexp(a, &e); // a = m·2^e, m in [0.5, 1)
    int ulp_exp = e - 11;
    if (ulp_exp < -24) ulp_exp = -24;
    double r = ldexp(rint(ldexp(a, -ulp_exp)), ulp_exp);
    if (r > 65504.0) r = __longlong_as_double(0x7ff0000000000000LL);
    return v < 0 ? -r : r;
}

struct QzGrid { float scale; int zero; };

// GptqGrid.Make: scale = half((hi − lo) / maxq) (≥ the smallest half), zero = (maxq+1)/2 or clamp(round(−lo/scale)).
__device__ QzGrid qz_grid_make(double lo, double hi, int maxq, bool sym)
{
    QzGrid g;
    float s = (float)qz_round_half(__ddiv_rn(__dsub_rn(hi, lo), (double)maxq));
    if (!(s > 0)) s = 5.9604644775390625e-08f;
    g.scale = s;
    if (sym) g.zero = (maxq + 1) / 2;
    else
    {
        int z = (int)rint(__ddiv_rn(-lo, (double)s));
        g.zero = z < 0 ? 0 : (z > maxq ? maxq : z);
    }
    return g;
}

__device__ __forceinline__ int qz_grid_q(double x, float scale, int zero, int maxq)
{
    int q = (int)rint(__ddiv_rn(x, (double)scale)) + zero;
    return q < 0 ? 0 : (q > maxq ? maxq : q);
}

// One row's GPTQ state during a block: the block's columns live in shared memory (sw), later ones in global W.
__device__ __forceinline__ double qz_w(const double* sw, const double* wrow, int j, int b0, int b1)
{
    return j < b1 ? sw[j - b0] : wrow[j];
}

// GptqGrid.Fit over columns [g0, g0+len) of the row, by one warp: the min/max pass is split over lanes (min/max are
// order-free), the 81 clipping candidates p = 1 − i/100 are split over lanes and the least error with the lowest i wins,
// which is the CPU's "first strictly smaller" choice.
__device__ QzGrid qz_grid_fit(const double* sw, const double* wrow, int g0, int len, int b0, int b1, int maxq, bool sym, bool mse, int lane)
{
    double lo = 0, hi = 0;
    for (int k = lane; k < len; k += 32)
    {
        double v = qz_w(sw, wrow, g0 + k, b0, b1);
        if (v < lo) lo = v;
        if (v > hi) hi = v;
    }
    for (int o = 16; o > 0; o >>= 1)
    {
        lo = fmin(lo, __shfl_xor_sync(0xffffffffu, lo, o));
        hi = fmax(hi, __shfl_xor_sync(0xffffffffu, hi, o));
    }
    if (sym)
    {
        hi = fmax(-lo, hi);
        if (lo < 0) lo = -hi;
    }
    if (lo == 0 && hi == 0) { lo = -1; hi = 1; }
    QzGrid best = qz_grid_make(lo, hi, maxq, sym);
    if (!mse) return best;
    double best_err = 0;
    int best_i = 0;
    bool have = false;
    for (int i = lane; i <= 80; i += 32)
    {
        double p = __dsub_rn(1.0, __ddiv_rn((double)i, 100.0));
        QzGrid c = i == 0 ? best : qz_grid_make(__dmul_rn(p, lo), __dmul_rn(p, hi), maxq, sym);
        double err = 0;
        for (int k = 0; k < len; ++k)
        {
            double v = qz_w(sw, wrow, g0 + k, b0, b1);
            double d = fabs(__dsub_rn(__dmul_rn((double)c.scale, (double)(qz_grid_q(v, c.scale, c.zero, maxq) - c.zero)), v));
            err = __dadd_rn(err, pow(d, 2.4));
        }
        if (!have || err < best_err) { best_err = err; best_i = i; have = true; }
    }
    for (int o = 16; o > 0; o >>= 1)
    {
        double oe = __shfl_xor_sync(0xffffffffu, best_err, o);
        int oi = __shfl_xor_sync(0xffffffffu, best_i, o);
        bool oh = __shfl_xor_sync(0xffffffffu, (int)have, o) != 0;
        if (oh && (!have || oe < best_err || (oe == best_err && oi < best_i))) { best_err = oe; best_i = oi; have = true; }
    }
    if (best_i == 0) return best;
    double p = __dsub_rn(1.0, __ddiv_rn((double)best_i, 100.0));
    return qz_grid_make(__dmul_rn(p, lo), __dmul_rn(p, hi), maxq, sym);
}

// One block [b0, b1) of GPTQ columns for every row: one warp per row, the block's weights in shared memory.
// Per column i (sequential): at a group start the grid is fitted; q = quant(w_i); e = (w_i − deq(q)) / U_ii; every later
// column of the block gets w_j ← w_j + (−e)·U_ij (lanes split j). Errors go to E[r][i − b0] for the trailing update.
// W: rows × n doubles (processing order); U: n × n; q out: rows × n bytes in original column order (perm[i]);
// scales/zeros: rows × groups.
extern "C" __global__ void gptq_block(double* __restrict__ W, const double* __restrict__ U, int rows, int n, int b0, int b1,
                                      int group, int groups, int maxq, int sym, int mse, const int* __restrict__ perm,
                                      u8* __restrict__ Q, float* __restrict__ scales, int* __restrict__ zeros,
                                      double* __restrict__ E)
{
    extern __shared__ double qz_shared[];
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int r = blockIdx.x * (blockDim.x >> 5) + warp;
    if (r >= rows) return;
    int bw = b1 - b0;
    double* sw = qz_shared + warp * bw;
    double* wrow = W + (size_t)r * n;
    for (int k = lane; k < bw; k += 32) sw[k] = wrow[b0 + k];
    __syncwarp();
    float scale = 1.f;
    int zero = 0;
    if (b0 % group != 0)
    {
        // The block starts inside a group (group > block): the group's grid was stored when its first column was fitted.
        int g = b0 / group;
        scale = scales[(size_t)r * groups + g];
        zero = zeros[(size_t)r * groups + g];
    }
    for (int i = b0; i < b1; ++i)
    {
        if (i % group == 0)
        {
            int len = min(group, n - i);
            QzGrid gr = qz_grid_fit(sw, wrow, i, len, b0, b1, maxq, sym != 0, mse != 0, lane);
            scale = gr.scale;
            zero = gr.zero;
            if (lane == 0)
            {
                scales[(size_t)r * groups + i / group] = scale;
                zeros[(size_t)r * groups + i / group] = zero;
            }
        }
        double wi = sw[i - b0];
        int qi = qz_grid_q(wi, scale, zero, maxq);
        double e = __ddiv_rn(__dsub_rn(wi, __dmul_rn((double)scale, (double)(qi - zero))), U[(size_t)i * n + i]);
        if (lane == 0)
        {
            Q[(size_t)r * n + (perm ? perm[i] : i)] = (u8)qi;
            E[(size_t)r * bw + (i - b0)] = e;
        }
        double ne = -e;
        const double* ui = U + (size_t)i * n;
        for (int j = i + 1 + lane; j < b1; j += 32) sw[j - b0] = __dadd_rn(sw[j - b0], __dmul_rn(ne, ui[j]));
        __syncwarp();
    }
    for (int k = lane; k < bw; k += 32) wrow[b0 + k] = sw[k];
}

// The lazy update of the columns after a block: W[r][c] ← W[r][c] + (−E[r][k])·U[b0+k][c] for k = 0..bw−1 in order,
// c ≥ b1 — the CPU's sequence of row axpys, one rounding per multiply and per add. Block of 256 threads = 32 columns × 8 rows;
// the block's E rows and U columns are staged through shared memory 64 k at a time.
extern "C" __global__ void gptq_trailing(double* __restrict__ W, const double* __restrict__ U, const double* __restrict__ E,
                                         int rows, int n, int b0, int b1)
{
    __shared__ double su[64][33];
    __shared__ double se[8][65];
    int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;
    int c = b1 + blockIdx.x * 32 + tx;
    int r = blockIdx.y * 8 + ty;
    int bw = b1 - b0;
    double w = (c < n && r < rows) ? W[(size_t)r * n + c] : 0.0;
    for (int k0 = 0; k0 < bw; k0 += 64)
    {
        int kn = min(64, bw - k0);
        for (int k = ty; k < kn; k += 8) su[k][tx] = c < n ? U[(size_t)(b0 + k0 + k) * n + c] : 0.0;
        int rr = blockIdx.y * 8 + ty;
        for (int k = tx; k < kn; k += 32) se[ty][k] = rr < rows ? E[(size_t)rr * bw + k0 + k] : 0.0;
        __syncthreads();
        for (int k = 0; k < kn; ++k) w = __dadd_rn(w, __dmul_rn(-se[ty][k], su[k][tx]));
        __syncthreads();
    }
    if (c < n && r < rows) W[(size_t)r * n + c] = w;
}
