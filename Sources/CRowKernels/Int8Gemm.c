// Y [T × rows] (+)= X̂ · Wᵀ for Q4_K and Q6_K weight rows and activations rounded to int8 per 256 values as llama.cpp
// rounds them (Q8_K: x̂ = q · d, sums of each 16 q), and for Q8_0, Q4_0 and Q5_0 rows with activations rounded per 32
// (Q8_0): the integer sums of ggml's dot products of those pairs, for many tokens at once. AVX-512 VNNI: call only
// where /proc/cpuinfo lists avx512f, avx512bw and avx512_vnni.
//
// Per block of 32 columns (Q8_0, Q4_0, Q5_0): d·dx · Σ_i w_i x_i, w_i signed; vpdpbusd multiplies unsigned by signed
// bytes, so the strip holds w_i + o (o = 128, 8, 16: 0…255, 0…15, 0…31) and o · Σ_i x_i is taken off the integer sum.
//
// Per super-block of 256 columns, row o and token t (ggml's names):
//   Q4_K: d·dx · Σ_j sc_j · Σ_{i in j} q_i x_i  −  dmin·dx · Σ_j m_j · Σ_{i in j} x_i   (j: 8 sub-blocks of 32, q 0…15)
//   Q6_K: d·dx · Σ_j sc_j · Σ_{i in j} q_i x_i  −  d·dx · Σ_j 32 sc_j · Σ_{i in j} x_i  (16 sub-blocks of 16, q 0…63)
// Both integer sums are exact in int32, as in ggml; only the floats that combine them are summed in another order.
//
// Weight rows are unpacked 16 at a time into a strip (one int32 lane per row): the values as bytes k-major in groups
// of 4 (vpdpbusd's unsigned operand), each sub-block's scale as int32, the correction factors (m_j, or 32·sc_j per 16
// values) as int16 pairs (vpdpwssd against pairs of 16-value sums), d and the correction's float. A tile of 8 tokens
// × 16 rows then sums in registers: per 4 columns one load and 8 vpdpbusd with the tokens' 4 bytes broadcast.
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>
#include "CRowKernels.h"
#include "BlockBits.h"
#include "Int8Strips.h"

#define QK_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,f16c")))
#define TM 8     // tokens per tile
#define RS 16    // rows per strip (one vector of int32 lanes)

// TM tokens (x[i]: its int8 row, dx[i] its steps, s16[i] its 16-value sums as int16) × one strip, all nb super-blocks;
// out[i] ← the 16 rows' values for token i
QK_VNNI static void tile(int nsub, const strip_t *s, size_t nb, const int8_t *const x[TM], const float *const dx[TM],
                         const int16_t *const s16[TM], __m512 out[TM]) {
    const int groups = 64 / nsub;   // groups of 4 columns per sub-block
    __m512 acc[TM];
#pragma clang loop unroll(full)
    for (int i = 0; i < TM; i++) acc[i] = _mm512_setzero_ps();
    for (size_t b = 0; b < nb; b++) {
        const uint8_t *qb = s->q + b * RS * 256;
        const int32_t *scb = s->sc + b * nsub * RS, *cwb = s->cw + b * 8 * RS;
        __m512i sum[TM], part[TM];
#pragma clang loop unroll(full)
        for (int i = 0; i < TM; i++) sum[i] = _mm512_setzero_si512();
        for (int j = 0; j < nsub; j++) {
#pragma clang loop unroll(full)
            for (int i = 0; i < TM; i++) part[i] = _mm512_setzero_si512();
            for (int g = j * groups; g < (j + 1) * groups; g++) {
                const __m512i wv = _mm512_load_si512((const void *)(qb + g * 64));
                const size_t col = b * 256 + 4 * (size_t)g;
#pragma clang loop unroll(full)
                for (int i = 0; i < TM; i++) {
                    part[i] = _mm512_dpbusd_epi32(part[i], wv, _mm512_set1_epi32((int32_t)u32_at((const uint8_t *)(x[i] + col))));
                }
            }
            const __m512i scv = _mm512_load_si512((const void *)(scb + j * RS));
#pragma clang loop unroll(full)
            for (int i = 0; i < TM; i++) sum[i] = _mm512_add_epi32(sum[i], _mm512_mullo_epi32(part[i], scv));
        }
#pragma clang loop unroll(full)
        for (int i = 0; i < TM; i++) part[i] = _mm512_setzero_si512();
        for (int p = 0; p < 8; p++) {
            const __m512i cv = _mm512_load_si512((const void *)(cwb + p * RS));
#pragma clang loop unroll(full)
            for (int i = 0; i < TM; i++) {
                part[i] = _mm512_dpwssd_epi32(part[i], cv, _mm512_set1_epi32((int32_t)u32_at((const uint8_t *)(s16[i] + b * 16 + 2 * p))));
            }
        }
        const __m512 dv = _mm512_load_ps(s->d + b * RS), dcv = _mm512_load_ps(s->dc + b * RS);
#pragma clang loop unroll(full)
        for (int i = 0; i < TM; i++) {
            const __m512 v = _mm512_fmadd_ps(dv, _mm512_cvtepi32_ps(sum[i]),
                                             _mm512_mul_ps(dcv, _mm512_cvtepi32_ps(part[i])));
            acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(dx[i][b]), v, acc[i]);
        }
    }
#pragma clang loop unroll(full)
    for (int i = 0; i < TM; i++) out[i] = acc[i];
}

// TM tokens (x[i] int8, dx[i] steps per 32, xo[i] o · Σ x per 32) × one strip of nb blocks of 32
QK_VNNI static void tile_32(const strip_t *s, size_t nb, const int8_t *const x[TM], const float *const dx[TM],
                            const int32_t *const xo[TM], __m512 out[TM]) {
    __m512 acc[TM];
#pragma clang loop unroll(full)
    for (int i = 0; i < TM; i++) acc[i] = _mm512_setzero_ps();
    for (size_t b = 0; b < nb; b++) {
        const uint8_t *qb = s->q + b * RS * 32;
        __m512i part[TM];
#pragma clang loop unroll(full)
        for (int i = 0; i < TM; i++) part[i] = _mm512_setzero_si512();
#pragma clang loop unroll(full)
        for (int g = 0; g < 8; g++) {
            const __m512i wv = _mm512_load_si512((const void *)(qb + g * 64));
#pragma clang loop unroll(full)
            for (int i = 0; i < TM; i++) {
                part[i] = _mm512_dpbusd_epi32(part[i], wv, _mm512_set1_epi32((int32_t)u32_at((const uint8_t *)(x[i] + 32 * b + 4 * g))));
            }
        }
        const __m512 dv = _mm512_load_ps(s->d + b * RS);
#pragma clang loop unroll(full)
        for (int i = 0; i < TM; i++) {
            const __m512 v = _mm512_cvtepi32_ps(_mm512_sub_epi32(part[i], _mm512_set1_epi32(xo[i][b])));
            acc[i] = _mm512_fmadd_ps(_mm512_mul_ps(dv, _mm512_set1_ps(dx[i][b])), v, acc[i]);
        }
    }
#pragma clang loop unroll(full)
    for (int i = 0; i < TM; i++) out[i] = acc[i];
}

// one tile of TM tokens × the strip's RS rows, its first h rows stored
QK_VNNI static void tile_store(int kind, const strip_t *s, size_t nb, const tile_tokens_t *tk, size_t h,
                               int accumulate) {
    __m512 out[TM];
    if (kind == QK_ROW_Q4_K || kind == QK_ROW_Q6_K) {
        tile(kind == QK_ROW_Q4_K ? 8 : 16, s, nb, tk->x, tk->dx, tk->s16, out);
    } else {
        tile_32(s, nb, tk->x, tk->dx, tk->xo, out);
    }
    const __mmask16 keep = (__mmask16)((1u << h) - 1);
    for (size_t i = 0; i < tk->count; i++) {
        __m512 v = out[i];
        if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(keep, tk->y[i]));
        _mm512_mask_storeu_ps(tk->y[i], keep, v);
    }
}

static _Thread_local tile_buffers_t buffers;   // the calling thread's, kept for its life

QK_VNNI int qk_int8_gemm_avx512vnni(int kind, const void *w, size_t row_bytes, size_t r0, size_t r1, const int8_t *q,
                                   const float *d, const int32_t *sums, size_t t_count, size_t n, float *y, size_t ldy,
                                   int accumulate) {
    return int8_gemm(kind, w, row_bytes, r0, r1, q, d, sums, t_count, n, y, ldy, accumulate, RS, TM, 0, 0, &buffers,
                     tile_store);
}

// x [n] rounded to int8 per block of 32 (llama.cpp's Q8_0: step amax / 127 kept as f16) or 256 (its Q8_K: the value of
// largest magnitude, the first of them, to exactly −127 steps), as RowKernels.Int8Dot.quantize rounds (its
// reference): each value x / step to nearest even, held in −128…127, NaN as 0. Writes the values both in natural
// order (bytes) and as Int8Dot holds them (values: per 32, the even-indexed then the odd-indexed), the steps and the
// sums of each 16 values.
QK_VNNI void qk_round_int8_avx512(const float *x, size_t n, size_t block, int16_t *values, float *steps,
                                  int32_t *sums, int8_t *bytes) {
    const __m512 lo = _mm512_set1_ps(-128), hi = _mm512_set1_ps(127);
    const __m512i abs_mask = _mm512_set1_epi32(0x7FFFFFFF);
    for (size_t b = 0; b < n / block; b++) {
        const float *xb = x + b * block;
        __m512 m = _mm512_setzero_ps();
        for (size_t i = 0; i < block; i += 16) {
            const __m512i bits = _mm512_castps_si512(_mm512_loadu_ps(xb + i));
            const __m512 a = _mm512_castsi512_ps(_mm512_and_si512(bits, abs_mask));
            m = _mm512_max_ps(a, m);   // a NaN in a gives m
        }
        const float amax = _mm512_reduce_max_ps(m);
        float scale, step;
        if (block == 32) {
            scale = amax != 0 ? 127 / amax : 0;
            step = _cvtsh_ss(_cvtss_sh(amax / 127, _MM_FROUND_TO_NEAREST_INT));
        } else if (amax == 0) {
            scale = 0;
            step = 0;
        } else {
            float vmax = 0;
            for (size_t i = 0; i < block; i++) {
                if (__builtin_fabsf(xb[i]) == amax) {
                    vmax = xb[i];
                    break;
                }
            }
            scale = -127 / vmax;
            step = 1 / scale;
        }
        steps[b] = step;
        const __m512 sv = _mm512_set1_ps(scale);
        for (size_t i = 0; i < block; i += 16) {
            const __m512 v = _mm512_mul_ps(_mm512_loadu_ps(xb + i), sv);
            const __mmask16 ord = _mm512_cmp_ps_mask(v, v, _CMP_ORD_Q);
            const __m512 c = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
            const __m512i q = _mm512_maskz_cvt_roundps_epi32(ord, c, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            _mm_storeu_si128((__m128i *)(bytes + b * block + i), _mm512_cvtepi32_epi8(q));
            sums[(b * block + i) / 16] = _mm512_reduce_add_epi32(q);
        }
        for (size_t g = 0; g < block; g += 32) {
            const int8_t *src = bytes + b * block + g;
            int16_t *dst = values + b * block + g;
            for (int k = 0; k < 16; k++) {
                dst[k] = src[2 * k];
                dst[16 + k] = src[2 * k + 1];
            }
        }
    }
}
