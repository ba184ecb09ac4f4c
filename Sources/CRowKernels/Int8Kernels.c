// Integer dot products of stored weight rows with int8 activations, on AVX2: pmaddubsw multiplies 32 unsigned weight
// bytes by 32 signed activation bytes and sums neighbours into 16-bit lanes, pmaddwd sums those (times a sub-block
// scale, or 1) into 32-bit lanes. Every integer sum is exact; the floats are one scale product per block.
//
// Only the functions marked QK_AVX2 use AVX2, FMA and F16C; the library is built for the baseline CPU and Swift calls
// these only where /proc/cpuinfo lists all three (RowKernelSet). The integer sums are those of the Swift kernels
// (RowKernels.Int8Dot); the blocks' floats are summed in eight lanes, another order than theirs (equal up to float
// rounding).
#include "CRowKernels.h"

#include "BlockBits.h"

// Σ x·y over 32 signed bytes, in eight 32-bit lanes. pmaddubsw wants an unsigned operand: |x| against y carrying x's
// sign. |x| ≤ 128 and |y| ≤ 127 (activations are rounded to ±127), so a pair sum stays under 2¹⁵.
QK_AVX2 static inline __m256i dot_s8(__m256i x, __m256i y) {
    __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
    return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
}

// Q8_0: f16 d, 32 signed bytes.
QK_AVX2 static float dot_q8_0(const uint8_t *row, const int8_t *q, const float *dx, size_t blocks) {
    __m256 acc = _mm256_setzero_ps();
    for (size_t b = 0; b < blocks; b++) {
        const uint8_t *p = row + 34 * b;
        __m256 s = _mm256_cvtepi32_ps(dot_s8(bytes32(p + 2), bytes32(q + 32 * b)));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16_at(p) * dx[b]), s, acc);
    }
    return hsum(acc);
}

// Q4_0: f16 d, 16 bytes of nibbles; x = (q − 8)·d.
QK_AVX2 static float dot_q4_0(const uint8_t *row, const int8_t *q, const float *dx, size_t blocks) {
    __m256 acc = _mm256_setzero_ps();
    for (size_t b = 0; b < blocks; b++) {
        const uint8_t *p = row + 18 * b;
        __m256i x = _mm256_sub_epi8(nibbles(p + 2), _mm256_set1_epi8(8));
        __m256 s = _mm256_cvtepi32_ps(dot_s8(x, bytes32(q + 32 * b)));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16_at(p) * dx[b]), s, acc);
    }
    return hsum(acc);
}

// Q5_0: f16 d, u32 of fifth bits (bit j for value j), 16 bytes of nibbles as Q4_0; x = (q − 16)·d.
QK_AVX2 static float dot_q5_0(const uint8_t *row, const int8_t *q, const float *dx, size_t blocks) {
    __m256 acc = _mm256_setzero_ps();
    for (size_t b = 0; b < blocks; b++) {
        const uint8_t *p = row + 22 * b;
        __m256i fifth = _mm256_and_si256(bit_bytes(u32_at(p + 2)), _mm256_set1_epi8(0x10));
        __m256i x = _mm256_sub_epi8(_mm256_or_si256(nibbles(p + 6), fifth), _mm256_set1_epi8(16));
        __m256 s = _mm256_cvtepi32_ps(dot_s8(x, bytes32(q + 32 * b)));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16_at(p) * dx[b]), s, acc);
    }
    return hsum(acc);
}

// Q4_K: f16 d, f16 dmin, 12 bytes of 6-bit scales and mins (eight each), 128 bytes of nibbles; per 64 values 32
// bytes, byte l holding value l (low nibble, sub-block 2j) and 32 + l (high, 2j + 1). x = d·sc·q − dmin·m, so
// row · x̂ = Σ dx·(d·Σ sc·Σ q·a − dmin·Σ m·Σ a), Σ a per 32 from the activations' sums of 16. The scales and mins are
// unpacked four at a time in 32-bit words; the super-blocks' floats gather in eight lanes, summed once per row.
QK_AVX2 static float dot_q4_K(const uint8_t *row, const int8_t *q, const float *dx, const int32_t *sums,
                              size_t blocks) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps();
    for (size_t b = 0; b < blocks; b++) {
        const uint8_t *p = row + 144 * b;
        uint64_t sc, mn;
        q4_K_scales_mins(p + 4, &sc, &mn);
        const int8_t *a = q + 256 * b;
        __m256i dot = _mm256_setzero_si256();
        for (int j = 0; j < 4; j++) {   // q ≤ 15 against |a| ≤ 127: pair sums < 2¹⁵; times sc ≤ 63 in 32 bits
            __m256i raw = bytes32(p + 16 + 32 * j);
            __m256i lo = _mm256_maddubs_epi16(_mm256_and_si256(raw, low4), bytes32(a + 64 * j));
            __m256i hi = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(raw, 4), low4),
                                              bytes32(a + 64 * j + 32));
            lo = _mm256_madd_epi16(lo, _mm256_set1_epi16((int16_t)((sc >> (16 * j)) & 0xFF)));
            hi = _mm256_madd_epi16(hi, _mm256_set1_epi16((int16_t)((sc >> (16 * j + 8)) & 0xFF)));
            dot = _mm256_add_epi32(dot, _mm256_add_epi32(lo, hi));
        }
        // Σ a per 32: pairs of the sums of 16 (hadd leaves them as pairs 0, 1, 4, 5, 2, 3, 6, 7; the permute restores
        // the order of the mins)
        const int32_t *s16 = sums + 16 * b;
        __m256i pairs = _mm256_hadd_epi32(_mm256_loadu_si256((const __m256i *)s16),
                                          _mm256_loadu_si256((const __m256i *)(s16 + 8)));
        pairs = _mm256_permute4x64_epi64(pairs, 0xD8);
        __m256i mins = _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((int64_t)mn)), pairs);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dx[b] * f16_at(p)), _mm256_cvtepi32_ps(dot), acc);
        acc = _mm256_fnmadd_ps(_mm256_set1_ps(dx[b] * f16_at(p + 2)), _mm256_cvtepi32_ps(mins), acc);
    }
    return hsum(acc);
}

// Q6_K: per 128 values 64 bytes of low nibbles (ql), 32 bytes of 2-bit highs (qh) and 8 signed scales (one per 16
// values), f16 d at the end; value l + 32g (g = 0…3) is ql[l + 32(g & 1)]'s low (g < 2) or high nibble with qh[l]'s
// bits 2g, 2g + 1 above it, minus 32. The 6-bit values multiply as unsigned bytes; the −32 comes off through the
// activations' sums of 16: Σ sc·(q − 32)·a = Σ sc·q·a − 32·Σ sc·Σ a.
QK_AVX2 static float dot_q6_K(const uint8_t *row, const int8_t *q, const float *dx, const int32_t *sums,
                              size_t blocks) {
    __m128i pick[4];   // bytes 2g (×8) then 2g + 1 (×8): one scale per 16 values, each half of a 32-value group
    for (int g = 0; g < 4; g++) {
        pick[g] = _mm_unpacklo_epi64(_mm_set1_epi8((char)(2 * g)), _mm_set1_epi8((char)(2 * g + 1)));
    }
    __m256 acc = _mm256_setzero_ps();
    for (size_t b = 0; b < blocks; b++) {
        const uint8_t *p = row + 210 * b;
        const __m128i sc = _mm_loadu_si128((const __m128i *)(p + 192));
        __m256i dot = _mm256_setzero_si256();
        for (int n = 0; n < 2; n++) {
            const __m256i qa = bytes32(p + 64 * n), qb = bytes32(p + 64 * n + 32), h = bytes32(p + 128 + 32 * n);
            const __m128i scn = n == 0 ? sc : _mm_srli_si128(sc, 8);
            __m256i v[4];
            q6_K_values(qa, qb, h, v);
            for (int g = 0; g < 4; g++) {   // q ≤ 63 against |a| ≤ 127: pair sums < 2¹⁵
                const int8_t *a = q + 256 * b + 128 * n + 32 * g;
                __m256i scale = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scn, pick[g]));
                dot = _mm256_add_epi32(dot, _mm256_madd_epi16(_mm256_maddubs_epi16(v[g], bytes32(a)), scale));
            }
        }
        const int32_t *s16 = sums + 16 * b;
        __m256i offset = _mm256_add_epi32(
            _mm256_mullo_epi32(_mm256_cvtepi8_epi32(sc), _mm256_loadu_si256((const __m256i *)s16)),
            _mm256_mullo_epi32(_mm256_cvtepi8_epi32(_mm_srli_si128(sc, 8)),
                               _mm256_loadu_si256((const __m256i *)(s16 + 8))));
        dot = _mm256_sub_epi32(dot, _mm256_slli_epi32(offset, 5));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dx[b] * f16_at(p + 208)), _mm256_cvtepi32_ps(dot), acc);
    }
    return hsum(acc);
}

QK_AVX2 int qk_int8_matvec_avx2(int kind, const void *w, size_t row_bytes, size_t r0, size_t r1, const int8_t *q,
                                const float *d, const int32_t *sums, size_t n, float *y, int accumulate) {
    for (size_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w + r * row_bytes;
        float v;
        switch (kind) {
        case QK_ROW_Q8_0: v = dot_q8_0(row, q, d, n / 32); break;
        case QK_ROW_Q4_0: v = dot_q4_0(row, q, d, n / 32); break;
        case QK_ROW_Q5_0: v = dot_q5_0(row, q, d, n / 32); break;
        case QK_ROW_Q4_K: v = dot_q4_K(row, q, d, sums, n / 256); break;
        case QK_ROW_Q6_K: v = dot_q6_K(row, q, d, sums, n / 256); break;
        default: return -1;
        }
        y[r] = accumulate ? y[r] + v : v;
    }
    return 0;
}
