// What the kernel files read out of ggml blocks with AVX2: f16 scales, nibbles and fifth bits as bytes, Q4_0's and
// Q5_0's values as signed bytes, Q4_K's packed 6-bit scales and mins, Q6_K's 6-bit values. Private to CRowKernels
// (not under include/).
#ifndef QUANTKIT_BLOCKBITS_H
#define QUANTKIT_BLOCKBITS_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define QK_AVX2 __attribute__((target("avx2,fma,f16c")))

QK_AVX2 static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

QK_AVX2 static inline float f16_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

static inline uint32_t u32_at(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

QK_AVX2 static inline __m256i bytes32(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }

// 16 bytes of nibbles as 32 bytes: low nibbles (values 0…15) in the low half, high nibbles (16…31) in the high half.
QK_AVX2 static inline __m256i nibbles(const uint8_t *p) {
    __m128i raw = _mm_loadu_si128((const __m128i *)p);
    __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(raw), _mm_srli_epi16(raw, 4), 1);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

// Bit i of `bits` as byte i: 0xFF where set, 0 where clear. Byte i reads byte i / 8 of the word (every 32-bit lane
// holds the word, so the in-lane shuffle reaches it from both halves) and tests its bit i % 8.
QK_AVX2 static inline __m256i bit_bytes(uint32_t bits) {
    const __m256i pick = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                          2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i mask = _mm256_set1_epi64x(0x8040201008040201LL);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int32_t)bits), pick);
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, mask), mask);
}

// Q4_0: f16 d, 16 bytes of nibbles; w = (q − 8)·d.
QK_AVX2 static inline __m256i q4_0_values(const uint8_t *p) {
    return _mm256_sub_epi8(nibbles(p + 2), _mm256_set1_epi8(8));
}

// Q5_0: f16 d, u32 of fifth bits (bit j for value j), 16 bytes of nibbles as Q4_0; w = (q − 16)·d.
QK_AVX2 static inline __m256i q5_0_values(const uint8_t *p) {
    __m256i fifth = _mm256_and_si256(bit_bytes(u32_at(p + 2)), _mm256_set1_epi8(0x10));
    return _mm256_sub_epi8(_mm256_or_si256(nibbles(p + 6), fifth), _mm256_set1_epi8(16));
}

// Q4_K's eight 6-bit scales and eight 6-bit mins from the 12 bytes at p, one per byte (sub-block j in byte j), unpacked
// four at a time in 32-bit words (ggml's get_scale_min_k4).
static inline void q4_K_scales_mins(const uint8_t *p, uint64_t *scales, uint64_t *mins) {
    const uint32_t low6 = 0x3F3F3F3F, nib = 0x0F0F0F0F, top2 = 0x03030303;
    const uint32_t w0 = u32_at(p), w1 = u32_at(p + 4), w2 = u32_at(p + 8);
    *scales = (uint64_t)(w0 & low6) | (uint64_t)((w2 & nib) | (((w0 >> 6) & top2) << 4)) << 32;
    *mins = (uint64_t)(w1 & low6) | (uint64_t)(((w2 >> 4) & nib) | (((w1 >> 6) & top2) << 4)) << 32;
}

// Q6_K: per 128 values 64 bytes of low nibbles (ql: qa, qb), 32 bytes of 2-bit highs (qh: h); value l + 32g
// (g = 0…3) is ql[l + 32(g & 1)]'s low (g < 2) or high nibble with qh[l]'s bits 2g, 2g + 1 above it: v[g] holds
// values 32g … 32g + 31 as unsigned bytes 0…63 (the −32 not taken off).
QK_AVX2 static inline void q6_K_values(__m256i qa, __m256i qb, __m256i h, __m256i v[4]) {
    const __m256i low4 = _mm256_set1_epi8(0x0F), low2 = _mm256_set1_epi8(0x03);
    v[0] = _mm256_or_si256(_mm256_and_si256(qa, low4), _mm256_slli_epi16(_mm256_and_si256(h, low2), 4));
    v[1] = _mm256_or_si256(_mm256_and_si256(qb, low4),
                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), low2), 4));
    v[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qa, 4), low4),
                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 4), low2), 4));
    v[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qb, 4), low4),
                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 6), low2), 4));
}

#endif
