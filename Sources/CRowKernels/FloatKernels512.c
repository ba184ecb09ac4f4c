// FloatKernels.c's dot products (stored weight rows with f32 activations, `--activations exact`) on AVX-512F: the
// same arithmetic in 16 lanes — each value widened to a float and multiplied by x with one rounding, the block's
// scale applied once per 16 or 32 values — so a product again equals the dequantized row's up to float rounding.
// Block values are assembled by BlockBits.h's AVX2 helpers as before. Four accumulators per row. Q4_K masks its
// nibbles in place as in FloatKernels.c, 64 bytes (two runs of 32) at a time, against x in the matching order
// (q4_K_order). Call only where /proc/cpuinfo lists avx512f, avx2, fma and f16c.
#include "CRowKernels.h"

#include "BlockBits.h"
#include "FloatMatvec.h"

#include <stdlib.h>

#define QK_512 __attribute__((target("avx512f,avx2,fma,f16c")))

// Sixteen signed bytes at p as floats.
QK_512 static inline __m512 s8x16(const int8_t *p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)p)));
}

// Σ q[i]·x[i] over 32 signed bytes, in 16 lanes.
QK_512 static inline __m512 dot32(const int8_t *q, const float *x) {
    return _mm512_fmadd_ps(s8x16(q + 16), _mm512_loadu_ps(x + 16), _mm512_mul_ps(s8x16(q), _mm512_loadu_ps(x)));
}

QK_512 static inline __m512 f32x16(const uint8_t *p) { return _mm512_loadu_ps((const float *)p); }

// bf16: the upper half of an f32.
QK_512 static inline __m512 bf16x16(const uint8_t *p) {
    const __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
}

// f32, bf16 and f16 rows: 64 values per step on four accumulators; n is a multiple of 8, so a last 8 may be left
// for the scalar loop.
#define QK_PLAIN_ROW(name, bytes, widen, scalar)                                                                  \
    QK_512 static float name(const uint8_t *w, const float *x, size_t n) {                                       \
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                                              \
        size_t j = 0;                                                                                            \
        for (; j + 64 <= n; j += 64) {                                                                           \
            a0 = _mm512_fmadd_ps(widen(w + (bytes) * j), _mm512_loadu_ps(x + j), a0);                            \
            a1 = _mm512_fmadd_ps(widen(w + (bytes) * (j + 16)), _mm512_loadu_ps(x + j + 16), a1);                \
            a2 = _mm512_fmadd_ps(widen(w + (bytes) * (j + 32)), _mm512_loadu_ps(x + j + 32), a2);                \
            a3 = _mm512_fmadd_ps(widen(w + (bytes) * (j + 48)), _mm512_loadu_ps(x + j + 48), a3);                \
        }                                                                                                        \
        for (; j + 16 <= n; j += 16) a0 = _mm512_fmadd_ps(widen(w + (bytes) * j), _mm512_loadu_ps(x + j), a0);   \
        float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));             \
        for (; j < n; j++) s += scalar(w + (bytes) * j) * x[j];                                                  \
        return s;                                                                                                \
    }

static inline float f32_at(const uint8_t *p) {
    float v;
    memcpy(&v, p, 4);
    return v;
}

static inline float bf16_at(const uint8_t *p) {
    const uint32_t bits = (uint32_t)(p[0] | (p[1] << 8)) << 16;
    float v;
    memcpy(&v, &bits, 4);
    return v;
}

// f16: F16C's conversion, 16 at a time.
QK_512 static inline __m512 f16x16(const uint8_t *p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

QK_PLAIN_ROW(f32_row, 4, f32x16, f32_at)
QK_PLAIN_ROW(bf16_row, 2, bf16x16, bf16_at)
QK_PLAIN_ROW(f16_row, 2, f16x16, f16_at)

// Q8_0, Q4_0, Q5_0: blocks of 32 values of `size` bytes, f16 d first; values as signed bytes (Q8_0's as stored,
// the others assembled by `values`); four blocks per step, each on its own accumulator.
QK_512 static inline const int8_t *q8_0_bytes(const uint8_t *p, int8_t *q) {
    (void)q;
    return (const int8_t *)(p + 2);
}

#define QK_ASSEMBLED(values)                                                                                     \
    QK_512 static inline const int8_t *values##_bytes(const uint8_t *p, int8_t *q) {                             \
        _mm256_store_si256((__m256i *)q, values(p));                                                             \
        return q;                                                                                                \
    }
QK_ASSEMBLED(q4_0_values)
QK_ASSEMBLED(q5_0_values)

#define QK_BLOCK32_ROW(name, size, bytes)                                                                        \
    QK_512 static float name(const uint8_t *row, const float *x, size_t blocks) {                               \
        _Alignas(32) int8_t q[4][32];                                                                            \
        __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};   \
        size_t b = 0;                                                                                            \
        for (; b + 4 <= blocks; b += 4) {                                                                        \
            for (int u = 0; u < 4; u++) {                                                                        \
                const uint8_t *p = row + (size) * (b + u);                                                       \
                acc[u] = _mm512_fmadd_ps(_mm512_set1_ps(f16_at(p)), dot32(bytes(p, q[u]), x + 32 * (b + u)),     \
                                         acc[u]);                                                                \
            }                                                                                                    \
        }                                                                                                        \
        for (; b < blocks; b++) {                                                                                \
            const uint8_t *p = row + (size) * b;                                                                 \
            acc[0] = _mm512_fmadd_ps(_mm512_set1_ps(f16_at(p)), dot32(bytes(p, q[0]), x + 32 * b), acc[0]);      \
        }                                                                                                        \
        return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]))); \
    }

QK_BLOCK32_ROW(q8_0_row, 34, q8_0_bytes)
QK_BLOCK32_ROW(q4_0_row, 18, q4_0_values_bytes)
QK_BLOCK32_ROW(q5_0_row, 22, q5_0_values_bytes)

// Q4_K as FloatKernels.c's q4_K_row, two runs of 32 bytes (128 values: sub-blocks 4h … 4h + 3) per 64-byte load:
// lanes 0–7 hold the first run's eight nibbles each, lanes 8–15 the second's. Even nibbles k belong to sub-blocks
// 4h (lanes 0–7) and 4h + 2 (8–15), odd ones to 4h + 1 and 4h + 3; `xp` holds x in that order (q4_K_order).
QK_512 static float q4_K_row(const uint8_t *row, const float *xp, const float *xsum, size_t blocks) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    __m256 mins = _mm256_setzero_ps();
    for (size_t b = 0; b < blocks; b++) {
        const uint8_t *p = row + 144 * b;
        uint64_t sc, mn;
        q4_K_scales_mins(p + 4, &sc, &mn);
        const uint8_t *s = (const uint8_t *)&sc;   // scale j in byte j (little-endian)
        const float d = f16_at(p), *xb = xp + 256 * b;
        for (int h = 0; h < 2; h++) {
            const __m512i raw = _mm512_loadu_si512((const void *)(p + 16 + 64 * h)), top = _mm512_srli_epi32(raw, 4);
            const float *xh = xb + 128 * h;
#define QK_NIB(v, k, m) _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_and_si512(v, _mm512_set1_epi32((int32_t)(m)))), \
                                      _mm512_loadu_ps(xh + 16 * (k)))
#define QK_NIBF(v, k, m, a) _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_and_si512(v, _mm512_set1_epi32((int32_t)(m)))), \
                                            _mm512_loadu_ps(xh + 16 * (k)), a)
            __m512 lo = QK_NIB(raw, 0, 0xFu), hi = QK_NIB(raw, 1, 0xF0u);
            lo = QK_NIBF(raw, 2, 0xF00u, lo);
            hi = QK_NIBF(raw, 3, 0xF000u, hi);
            lo = QK_NIBF(raw, 4, 0xF0000u, lo);
            hi = QK_NIBF(raw, 5, 0xF00000u, hi);
            lo = QK_NIBF(raw, 6, 0xF000000u, lo);
            hi = QK_NIBF(top, 7, 0xF000000u, hi);
#undef QK_NIB
#undef QK_NIBF
            const __m512 slo = _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(d * s[4 * h]), _mm512_set1_ps(d * s[4 * h + 2]));
            const __m512 shi = _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(d * s[4 * h + 1]),
                                                    _mm512_set1_ps(d * s[4 * h + 3]));
            acc0 = _mm512_fmadd_ps(slo, lo, acc0);
            acc1 = _mm512_fmadd_ps(shi, hi, acc1);
        }
        const __m256 m = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((int64_t)mn)));
        mins = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(f16_at(p + 2)), m), _mm256_loadu_ps(xsum + 8 * b), mins);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) - hsum(mins);
}

// x in q4_K_row's order: per 128 values (runs r = 0, 1 of 64), for each nibble k = 0…7 sixteen values: lane i < 8
// of run 0, lane i ≥ 8 of run 1, each value 4(i % 8) + k / 2 of its run's sub-block k % 2, times 2^-4k (2^-24 for
// k = 7).
static void q4_K_order(const float *x, size_t n, float *xp) {
    for (size_t g = 0; g < n; g += 128) {
        for (int k = 0; k < 8; k++) {
            const float scale = k == 7 ? 0x1p-24f : 1.0f / (float)(1u << (4 * k));
            for (int i = 0; i < 16; i++) {
                xp[g + 16 * k + i] = x[g + 64 * (i / 8) + 32 * (k % 2) + 4 * (i % 8) + k / 2] * scale;
            }
        }
    }
}

// Q6_K as FloatKernels.c's q6_K_row, the 16 values of each scale in one vector, widened from the assembled bytes
// in registers.
QK_512 static float q6_K_row(const uint8_t *row, const float *x, size_t blocks) {
    const __m256i off = _mm256_set1_epi8(32);
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (size_t b = 0; b < blocks; b++) {
        const uint8_t *p = row + 210 * b;
        const int8_t *sc = (const int8_t *)(p + 192);
        const float d = f16_at(p + 208);
        for (int n = 0; n < 2; n++) {
            const __m256i qa = bytes32(p + 64 * n), qb = bytes32(p + 64 * n + 32), h = bytes32(p + 128 + 32 * n);
            __m256i v[4];
            q6_K_values(qa, qb, h, v);
            const float *xn = x + 256 * b + 128 * n;
            for (int g = 0; g < 4; g++) {   // values 32g … 32g + 31 of this half: scales 8n + 2g and 8n + 2g + 1
                const __m256i q = _mm256_sub_epi8(v[g], off);
                const __m512 a = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(q)));
                const __m512 c = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(q, 1)));
                const int k = 2 * g;
                acc[k % 4] = _mm512_fmadd_ps(_mm512_set1_ps(d * sc[8 * n + k]),
                                             _mm512_mul_ps(a, _mm512_loadu_ps(xn + 16 * k)), acc[k % 4]);
                acc[k % 4 + 1] = _mm512_fmadd_ps(_mm512_set1_ps(d * sc[8 * n + k + 1]),
                                                 _mm512_mul_ps(c, _mm512_loadu_ps(xn + 16 * k + 16)), acc[k % 4 + 1]);
            }
        }
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
}

// Σ x per 32 values
QK_512 static void x_sums(const float *x, size_t n, float *xsum) {
    for (size_t g = 0; g < n / 32; g++) {
        xsum[g] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_loadu_ps(x + 32 * g), _mm512_loadu_ps(x + 32 * g + 16)));
    }
}

QK_FLOAT_MATVEC(qk_f32_matvec_avx512, QK_512)
