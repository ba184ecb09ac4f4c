// Dot products of stored weight rows with f32 activations, on AVX2 with FMA: the products of `--activations exact`
// (the default), where a row's product is that of its dequantized values. Weights become floats in registers: bf16
// by a 16-bit shift, int8 by vpmovsxbd + vcvtdq2ps. Q4_0, Q5_0 and Q6_K first assemble a block's or super-block's
// integer values (offset removed, as signed bytes) with 32-byte operations into a small buffer that stays in L1, then
// widen eight at a time; Q4_K masks its nibbles in place against a reordered copy of x (q4_K_row). Each value is
// multiplied by x in f32 with one rounding (FMA) and the block's scale applied once per 16 or 32 values:
// w·x = d·sc·Σ q·x (− dmin·m·Σ x for Q4_K, with Σ x per 32 made once per call), so a product equals the dequantized
// row's up to float rounding — another order than the Swift reference kernels (RowKernels.RowDot), which the
// baseline set runs. Two to four accumulators per row: with one, the loops wait on FMA latency.
//
// Only the functions marked QK_AVX2 use AVX2, FMA and F16C; the library is built for the baseline CPU and Swift calls
// these only where /proc/cpuinfo lists all three (RowKernelSet).
#include "CRowKernels.h"

#include "BlockBits.h"
#include "FloatMatvec.h"

#include <stdlib.h>

// Eight signed bytes at p as floats.
QK_AVX2 static inline __m256 s8x8(const int8_t *p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
}

// Σ q[i]·x[i] over 16 signed bytes, in eight lanes.
QK_AVX2 static inline __m256 dot16(const int8_t *q, const float *x) {
    __m256 s = _mm256_mul_ps(s8x8(q), _mm256_loadu_ps(x));
    return _mm256_fmadd_ps(s8x8(q + 8), _mm256_loadu_ps(x + 8), s);
}

// Σ q[i]·x[i] over 32 signed bytes, in eight lanes (two chains).
QK_AVX2 static inline __m256 dot32(const int8_t *q, const float *x) {
    __m256 s = _mm256_mul_ps(s8x8(q), _mm256_loadu_ps(x));
    __m256 t = _mm256_mul_ps(s8x8(q + 8), _mm256_loadu_ps(x + 8));
    s = _mm256_fmadd_ps(s8x8(q + 16), _mm256_loadu_ps(x + 16), s);
    t = _mm256_fmadd_ps(s8x8(q + 24), _mm256_loadu_ps(x + 24), t);
    return _mm256_add_ps(s, t);
}

// f32, bf16 and f16 rows: 32 values per step on four accumulators (n is a multiple of 8).
QK_AVX2 static inline __m256 f32x8(const uint8_t *p) { return _mm256_loadu_ps((const float *)p); }

// bf16: the upper half of an f32.
QK_AVX2 static inline __m256 bf16x8(const uint8_t *p) {
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

#define QK_PLAIN_ROW(name, bytes, widen)                                                                         \
    QK_AVX2 static float name(const uint8_t *w, const float *x, size_t n) {                                      \
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = a0;           \
        size_t j = 0;                                                                                            \
        for (; j + 32 <= n; j += 32) {                                                                           \
            a0 = _mm256_fmadd_ps(widen(w + (bytes) * j), _mm256_loadu_ps(x + j), a0);                            \
            a1 = _mm256_fmadd_ps(widen(w + (bytes) * (j + 8)), _mm256_loadu_ps(x + j + 8), a1);                  \
            a2 = _mm256_fmadd_ps(widen(w + (bytes) * (j + 16)), _mm256_loadu_ps(x + j + 16), a2);                \
            a3 = _mm256_fmadd_ps(widen(w + (bytes) * (j + 24)), _mm256_loadu_ps(x + j + 24), a3);                \
        }                                                                                                        \
        for (; j < n; j += 8) a0 = _mm256_fmadd_ps(widen(w + (bytes) * j), _mm256_loadu_ps(x + j), a0);          \
        return hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));                                \
    }

// f16: F16C's conversion.
QK_AVX2 static inline __m256 f16x8(const uint8_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

QK_PLAIN_ROW(f32_row, 4, f32x8)
QK_PLAIN_ROW(bf16_row, 2, bf16x8)
QK_PLAIN_ROW(f16_row, 2, f16x8)

// Q8_0: f16 d, 32 × int8; w = d·q. Two blocks per step, each on its own accumulator.
QK_AVX2 static float q8_0_row(const uint8_t *row, const float *x, size_t blocks) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    size_t b = 0;
    for (; b + 2 <= blocks; b += 2) {
        const uint8_t *p = row + 34 * b;
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(f16_at(p)), dot32((const int8_t *)(p + 2), x + 32 * b), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(f16_at(p + 34)), dot32((const int8_t *)(p + 36), x + 32 * b + 32), acc1);
    }
    if (b < blocks) {
        const uint8_t *p = row + 34 * b;
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(f16_at(p)), dot32((const int8_t *)(p + 2), x + 32 * b), acc0);
    }
    return hsum(_mm256_add_ps(acc0, acc1));
}

// Rows of 32-value blocks of `size` bytes, f16 d first, whose values `values` assembles as signed bytes: two blocks
// per step, each on its own accumulator.
#define QK_BLOCK32_ROW(name, size, values)                                                                       \
    QK_AVX2 static float name(const uint8_t *row, const float *x, size_t blocks) {                              \
        _Alignas(32) int8_t q[64];                                                                               \
        __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();                                           \
        size_t b = 0;                                                                                            \
        for (; b + 2 <= blocks; b += 2) {                                                                        \
            const uint8_t *p = row + (size) * b;                                                                 \
            _mm256_store_si256((__m256i *)q, values(p));                                                         \
            _mm256_store_si256((__m256i *)(q + 32), values(p + (size)));                                         \
            acc0 = _mm256_fmadd_ps(_mm256_set1_ps(f16_at(p)), dot32(q, x + 32 * b), acc0);                       \
            acc1 = _mm256_fmadd_ps(_mm256_set1_ps(f16_at(p + (size))), dot32(q + 32, x + 32 * b + 32), acc1);    \
        }                                                                                                        \
        if (b < blocks) {                                                                                        \
            const uint8_t *p = row + (size) * b;                                                                 \
            _mm256_store_si256((__m256i *)q, values(p));                                                         \
            acc0 = _mm256_fmadd_ps(_mm256_set1_ps(f16_at(p)), dot32(q, x + 32 * b), acc0);                       \
        }                                                                                                        \
        return hsum(_mm256_add_ps(acc0, acc1));                                                                  \
    }

QK_BLOCK32_ROW(q4_0_row, 18, q4_0_values)
QK_BLOCK32_ROW(q5_0_row, 22, q5_0_values)

// Q4_K: f16 d, f16 dmin, 12 bytes of 6-bit scales and mins (eight each), 128 bytes of nibbles; per 64 values 32
// bytes, byte l holding value l (low nibble, sub-block 2j) and 32 + l (high, 2j + 1). w = d·sc·q − dmin·m per 32
// values: row · x = Σ d·sc·Σ q·x − Σ dmin·m·Σ x, with `xsum` holding Σ x per 32. No byte buffer: each 32-bit lane of
// the 32 bytes holds eight nibbles, nibble k of lane i being value 4i + k / 2 of sub-block 2j + k % 2; `xp` holds x
// in that order (q4_K_order), nibble k's values scaled by 2^-4k (2^-24 for k = 7, whose nibble is shifted down 4
// first). (lane & 0xF << 4k) is q·2^4k, exact as a float, and its product with the scaled x is q·x.
QK_AVX2 static float q4_K_row(const uint8_t *row, const float *xp, const float *xsum, size_t blocks) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), mins = _mm256_setzero_ps();
    for (size_t b = 0; b < blocks; b++) {
        const uint8_t *p = row + 144 * b;
        uint64_t sc, mn;
        q4_K_scales_mins(p + 4, &sc, &mn);
        const uint8_t *s = (const uint8_t *)&sc;   // scale j in byte j (little-endian)
        const float d = f16_at(p), *xb = xp + 256 * b;
        for (int j = 0; j < 4; j++) {
            const __m256i raw = bytes32(p + 16 + 32 * j), top = _mm256_srli_epi32(raw, 4);
            const float *xj = xb + 64 * j;
#define QK_NIB(v, k, m) _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v, _mm256_set1_epi32((int32_t)(m)))), \
                                      _mm256_loadu_ps(xj + 8 * (k)))
#define QK_NIBF(v, k, m, a) _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v, _mm256_set1_epi32((int32_t)(m)))), \
                                            _mm256_loadu_ps(xj + 8 * (k)), a)
            __m256 lo = QK_NIB(raw, 0, 0xFu), hi = QK_NIB(raw, 1, 0xF0u);
            lo = QK_NIBF(raw, 2, 0xF00u, lo);
            hi = QK_NIBF(raw, 3, 0xF000u, hi);
            lo = QK_NIBF(raw, 4, 0xF0000u, lo);
            hi = QK_NIBF(raw, 5, 0xF00000u, hi);
            lo = QK_NIBF(raw, 6, 0xF000000u, lo);
            hi = QK_NIBF(top, 7, 0xF000000u, hi);
#undef QK_NIB
#undef QK_NIBF
            acc0 = _mm256_fmadd_ps(_mm256_set1_ps(d * s[2 * j]), lo, acc0);
            acc1 = _mm256_fmadd_ps(_mm256_set1_ps(d * s[2 * j + 1]), hi, acc1);
        }
        __m256 m = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((int64_t)mn)));
        mins = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(f16_at(p + 2)), m), _mm256_loadu_ps(xsum + 8 * b), mins);
    }
    return hsum(_mm256_sub_ps(_mm256_add_ps(acc0, acc1), mins));
}

// x in q4_K_row's order: per 64 values, eight runs of 8 (nibble k = 0…7), value 4i + k / 2 of the sub-block k % 2
// times 2^-4k (2^-24 for k = 7).
static void q4_K_order(const float *x, size_t n, float *xp) {
    for (size_t g = 0; g < n; g += 64) {
        for (int k = 0; k < 8; k++) {
            const float scale = k == 7 ? 0x1p-24f : 1.0f / (float)(1u << (4 * k));
            for (int i = 0; i < 8; i++) xp[g + 8 * k + i] = x[g + 32 * (k % 2) + 4 * i + k / 2] * scale;
        }
    }
}

// Q6_K: per 128 values 64 bytes of low nibbles (ql), 32 bytes of 2-bit highs (qh) and 8 signed scales (one per 16
// values), f16 d at the end; value l + 32g (g = 0…3) is ql[l + 32(g & 1)]'s low (g < 2) or high nibble with qh[l]'s
// bits 2g, 2g + 1 above it, minus 32. w = d·sc·(q − 32).
QK_AVX2 static float q6_K_row(const uint8_t *row, const float *x, size_t blocks) {
    const __m256i off = _mm256_set1_epi8(32);
    _Alignas(32) int8_t q[128];
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (size_t b = 0; b < blocks; b++) {
        const uint8_t *p = row + 210 * b;
        const int8_t *sc = (const int8_t *)(p + 192);
        const float d = f16_at(p + 208);
        for (int n = 0; n < 2; n++) {
            const __m256i qa = bytes32(p + 64 * n), qb = bytes32(p + 64 * n + 32), h = bytes32(p + 128 + 32 * n);
            __m256i v[4];
            q6_K_values(qa, qb, h, v);
            for (int g = 0; g < 4; g++) _mm256_store_si256((__m256i *)(q + 32 * g), _mm256_sub_epi8(v[g], off));
            const float *xn = x + 256 * b + 128 * n;
            for (int k = 0; k < 8; k++) {   // scale 8n + k: values 16k … 16k + 15 of this half
                acc[k % 4] = _mm256_fmadd_ps(_mm256_set1_ps(d * sc[8 * n + k]), dot16(q + 16 * k, xn + 16 * k),
                                             acc[k % 4]);
            }
        }
    }
    return hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
}

// f16 or bf16 [count] → f32 (exact): F16/BF16 rows made f32 for a prompt's products
QK_AVX2 void qk_widen_16bit_avx2(const void *src, float *dst, size_t count, int bf16) {
    const uint8_t *s = (const uint8_t *)src;
    size_t i = 0;
    for (; i + 8 <= count; i += 8) _mm256_storeu_ps(dst + i, bf16 ? bf16x8(s + 2 * i) : f16x8(s + 2 * i));
    for (; i < count; i++) {
        const uint32_t bits = (uint32_t)(s[2 * i] | (s[2 * i + 1] << 8)) << 16;
        float v;
        memcpy(&v, &bits, 4);
        dst[i] = bf16 ? v : f16_at(s + 2 * i);
    }
}

// Σ x per 32 values
QK_AVX2 static void x_sums(const float *x, size_t n, float *xsum) {
    for (size_t g = 0; g < n / 32; g++) {
        const float *xg = x + 32 * g;
        __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(xg), _mm256_loadu_ps(xg + 8)),
                                 _mm256_add_ps(_mm256_loadu_ps(xg + 16), _mm256_loadu_ps(xg + 24)));
        xsum[g] = hsum(s);
    }
}

QK_FLOAT_MATVEC(qk_f32_matvec_avx2, QK_AVX2)
