// The integer tiles of Int8Gemm.c for CPUs with AVX2 and without AVX-512 VNNI: the same integer sums of ggml's dot
// products (Q4_K, Q6_K against activations rounded per 256, Q8_0, Q4_0, Q5_0 per 32), for many tokens at once. Call
// only where /proc/cpuinfo lists avx2, fma and f16c.
//
// A strip holds 8 rows (one ymm of int32 lanes; layout in Int8Strips.h), a tile is 4 tokens × 8 rows. Per group of 4
// columns, vpmaddubsw multiplies the rows' unsigned bytes by the token's 4 signed bytes (broadcast) and adds
// neighbours into int16: per row two sums of 2 products. The int16 sums of a run of groups are added with vpaddw
// (no wrap: the activations are −127…127, so a pair is at most 2·63·127) and widened by vpmaddwd with the sub-block's
// scale (K-quants, both int16 halves of a lane hold it) or with ones:
//   Q4_K runs of 8 groups (a sub-block of 32: 8·2·15·127 = 30480), Q6_K of 2 (2·2·63·127 = 32004),
//   Q4_0 of 8 (30480), Q5_0 of 4 (4·2·31·127 = 31496).
// Q8_0's weights are signed; as in ggml, vpmaddubsw takes |w| (0…128) and the activations with w's sign
// (vpsignb: |x| ≤ 127, so negating is exact) — pairs at most 2·128·127, widened each group.
// Mins, Q6_K's −32 and the offsets of Q4_0/Q5_0 come off through the 16-value or 32-value sums as in Int8Gemm.c.
#include <immintrin.h>
#include "CRowKernels.h"
#include "BlockBits.h"
#include "Int8Strips.h"

#define TM 4   // tokens per tile
#define RS 8   // rows per strip

QK_AVX2 static inline __m256i bcast4(const int8_t *p) { return _mm256_set1_epi32((int32_t)u32_at((const uint8_t *)p)); }

// TM tokens (x[i] int8, dx[i] steps per 256, s16[i] 16-value sums as int16) × one strip, all nb super-blocks
QK_AVX2 static void tile(int nsub, const strip_t *s, size_t nb, const int8_t *const x[TM], const float *const dx[TM],
                         const int16_t *const s16[TM], __m256 out[TM]) {
    const int groups = 64 / nsub, run = nsub == 8 ? 8 : 2;
    __m256 acc[TM];
    for (int i = 0; i < TM; i++) acc[i] = _mm256_setzero_ps();
    for (size_t b = 0; b < nb; b++) {
        const uint8_t *qb = s->q + b * RS * 256;
        const int32_t *scb = s->sc + b * nsub * RS, *cwb = s->cw + b * 8 * RS;
        __m256i sum[TM];
        for (int i = 0; i < TM; i++) sum[i] = _mm256_setzero_si256();
        for (int j = 0; j < nsub; j++) {
            const __m256i scv = _mm256_load_si256((const __m256i *)(scb + j * RS));
            for (int g0 = j * groups; g0 < (j + 1) * groups; g0 += run) {
                __m256i p16[TM];
                for (int i = 0; i < TM; i++) p16[i] = _mm256_setzero_si256();
                for (int g = g0; g < g0 + run; g++) {
                    const __m256i wv = _mm256_load_si256((const __m256i *)(qb + g * 32));
                    const size_t col = b * 256 + 4 * (size_t)g;
                    for (int i = 0; i < TM; i++) {
                        p16[i] = _mm256_add_epi16(p16[i], _mm256_maddubs_epi16(wv, bcast4(x[i] + col)));
                    }
                }
                for (int i = 0; i < TM; i++) sum[i] = _mm256_add_epi32(sum[i], _mm256_madd_epi16(p16[i], scv));
            }
        }
        __m256i part[TM];
        for (int i = 0; i < TM; i++) part[i] = _mm256_setzero_si256();
        for (int p = 0; p < 8; p++) {
            const __m256i cv = _mm256_load_si256((const __m256i *)(cwb + p * RS));
            for (int i = 0; i < TM; i++) {
                part[i] = _mm256_add_epi32(part[i], _mm256_madd_epi16(cv, bcast4((const int8_t *)(s16[i] + b * 16 + 2 * p))));
            }
        }
        const __m256 dv = _mm256_load_ps(s->d + b * RS), dcv = _mm256_load_ps(s->dc + b * RS);
        for (int i = 0; i < TM; i++) {
            const __m256 v = _mm256_fmadd_ps(dv, _mm256_cvtepi32_ps(sum[i]),
                                             _mm256_mul_ps(dcv, _mm256_cvtepi32_ps(part[i])));
            acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(dx[i][b]), v, acc[i]);
        }
    }
    for (int i = 0; i < TM; i++) out[i] = acc[i];
}

// TM tokens (x[i] int8, dx[i] steps per 32, xo[i] o · Σ x per 32) × one strip of nb blocks of 32
QK_AVX2 static void tile_32(int kind, const strip_t *s, size_t nb, const int8_t *const x[TM],
                            const float *const dx[TM], const int32_t *const xo[TM], __m256 out[TM]) {
    const __m256i ones = _mm256_set1_epi16(1);
    const int run = kind == QK_ROW_Q5_0 ? 4 : 8;
    __m256 acc[TM];
    for (int i = 0; i < TM; i++) acc[i] = _mm256_setzero_ps();
    for (size_t b = 0; b < nb; b++) {
        const uint8_t *qb = s->q + b * RS * 32;
        __m256i part[TM];
        for (int i = 0; i < TM; i++) part[i] = _mm256_setzero_si256();
        if (kind == QK_ROW_Q8_0) {
            for (int g = 0; g < 8; g++) {
                const __m256i wv = _mm256_load_si256((const __m256i *)(qb + g * 32)), aw = _mm256_abs_epi8(wv);
                for (int i = 0; i < TM; i++) {
                    const __m256i sx = _mm256_sign_epi8(bcast4(x[i] + 32 * b + 4 * g), wv);
                    part[i] = _mm256_add_epi32(part[i], _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sx), ones));
                }
            }
        } else {
            for (int g0 = 0; g0 < 8; g0 += run) {
                __m256i p16[TM];
                for (int i = 0; i < TM; i++) p16[i] = _mm256_setzero_si256();
                for (int g = g0; g < g0 + run; g++) {
                    const __m256i wv = _mm256_load_si256((const __m256i *)(qb + g * 32));
                    for (int i = 0; i < TM; i++) {
                        p16[i] = _mm256_add_epi16(p16[i], _mm256_maddubs_epi16(wv, bcast4(x[i] + 32 * b + 4 * g)));
                    }
                }
                for (int i = 0; i < TM; i++) part[i] = _mm256_add_epi32(part[i], _mm256_madd_epi16(p16[i], ones));
            }
        }
        const __m256 dv = _mm256_load_ps(s->d + b * RS);
        for (int i = 0; i < TM; i++) {
            const __m256 v = _mm256_cvtepi32_ps(_mm256_sub_epi32(part[i], _mm256_set1_epi32(xo[i][b])));
            acc[i] = _mm256_fmadd_ps(_mm256_mul_ps(dv, _mm256_set1_ps(dx[i][b])), v, acc[i]);
        }
    }
    for (int i = 0; i < TM; i++) out[i] = acc[i];
}

// one tile of TM tokens × the strip's RS rows, its first h rows stored
QK_AVX2 static void tile_store(int kind, const strip_t *s, size_t nb, const tile_tokens_t *tk, size_t h,
                               int accumulate) {
    __m256 out[TM];
    if (kind == QK_ROW_Q4_K || kind == QK_ROW_Q6_K) {
        tile(kind == QK_ROW_Q4_K ? 8 : 16, s, nb, tk->x, tk->dx, tk->s16, out);
    } else {
        tile_32(kind, s, nb, tk->x, tk->dx, tk->xo, out);
    }
    const __m256i keep = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)h), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    for (size_t i = 0; i < tk->count; i++) {
        __m256 v = out[i];
        if (accumulate) v = _mm256_add_ps(v, _mm256_maskload_ps(tk->y[i], keep));
        _mm256_maskstore_ps(tk->y[i], keep, v);
    }
}

static _Thread_local tile_buffers_t buffers;   // the calling thread's, kept for its life

// scales as int16 pairs for vpmaddwd; Q8_0's signed bytes for the sign trick (so no offset to take off)
QK_AVX2 int qk_int8_gemm_avx2(int kind, const void *w, size_t row_bytes, size_t r0, size_t r1, const int8_t *q,
                             const float *d, const int32_t *sums, size_t t_count, size_t n, float *y, size_t ldy,
                             int accumulate) {
    return int8_gemm(kind, w, row_bytes, r0, r1, q, d, sums, t_count, n, y, ldy, accumulate, RS, TM, 1, 1, &buffers,
                     tile_store);
}
