// C [m × n] (+)= A [m × k] · Bᵀ (B [n × k]), all row-major: the forward pass's products of activations (A, one row
// per token) and weights (B, one row per output). AVX-512F with FMA: call only where /proc/cpuinfo lists avx512f.
//
// Blocked as BLIS does: for each KC columns of k, up to MB token rows are packed once into 12-row strips (k-major: 12
// values per k); each block of NB weight rows is packed once into 32-row strips (k-major: 32 outputs per k, two
// vectors) and stays in L2 while every 12 × 32 tile of C it meets is summed in 24 registers: per k two vector loads,
// twelve broadcasts, 24 FMAs. Each value of C is summed over k in the same order whatever m, n or the columns asked
// for. Rows past m or n are zero in the packed strips and never stored.
#include <immintrin.h>
#include <stdlib.h>
#include "CRowKernels.h"

#define QK_AVX512 __attribute__((target("avx512f,fma")))
#define MR 12    // token rows per tile
#define NR 32    // output columns per tile (two vectors)
#define KC 256   // columns of k per packed block
#define NB 256   // weight rows per packed block: NB × KC × 4 = 256 KiB in L2
#define MB 516   // token rows packed at a time (a multiple of MR): MB × KC × 4 = 516 KiB

// out[c] ← column c of the 16 × 16 block r (rows r[0…15]): two rounds of in-lane unpacks and shuffles give, per
// 128-bit lane, four columns of four rows; two rounds of lane shuffles gather each column's four lanes
QK_AVX512 static void transpose16(const __m512 r[16], __m512 out[16]) {
    __m512 t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);       // per lane: columns 0, 1 of rows 2i, 2i + 1
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);   // columns 2, 3
    }
    for (int g = 0; g < 4; g++) {   // rows 4g … 4g + 3: u[4g + c] holds column c of each lane's four columns
        u[4 * g] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int c = 0; c < 4; c++) {   // column 4L + c lives in lane L of u[c], u[4 + c], u[8 + c], u[12 + c]
        const __m512 v = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88), w = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD);
        const __m512 x = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
        const __m512 y = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
        out[c] = _mm512_shuffle_f32x4(v, x, 0x88);
        out[8 + c] = _mm512_shuffle_f32x4(v, x, 0xDD);
        out[4 + c] = _mm512_shuffle_f32x4(w, y, 0x88);
        out[12 + c] = _mm512_shuffle_f32x4(w, y, 0xDD);
    }
}

// rows [n0, n0 + nb) of a matrix, columns [k0, k0 + kb) → pb: for each strip of `strip` rows, kb × strip values
// k-major. The matrix is b [rows × k] (row stride ldb), or with `trans` its transpose stored as b [k × rows], whose
// strips are contiguous runs. Rows stored k-contiguous are turned k-major 16 × 16 values at a time.
QK_AVX512 static void pack_rows(const float *b, size_t ldb, int trans, size_t n0, size_t nb, size_t k0, size_t kb,
                                size_t strip, float *pb) {
    for (size_t j = 0; j < nb; j += strip) {
        size_t w = nb - j < strip ? nb - j : strip;
        float *d = pb + j * kb;
        if (trans) {
            for (size_t kk = 0; kk < kb; kk++) {
                const float *src = b + (k0 + kk) * ldb + n0 + j;
                for (size_t t = 0; t < w; t++) d[kk * strip + t] = src[t];
            }
            for (size_t t = w; t < strip; t++) {
                for (size_t kk = 0; kk < kb; kk++) d[kk * strip + t] = 0;
            }
            continue;
        }
        for (size_t s0 = 0; s0 < strip; s0 += 16) {   // 16 rows of the strip at a time (12-row strips: 12 of 16)
            const size_t lanes = strip - s0 < 16 ? strip - s0 : 16;
            const size_t rows = w > s0 ? (w - s0 < lanes ? w - s0 : lanes) : 0;
            const __mmask16 keep = (__mmask16)((1u << lanes) - 1);
            size_t kk = 0;
            for (; kk + 16 <= kb; kk += 16) {
                __m512 r[16], c[16];
                for (size_t t = 0; t < 16; t++) {
                    r[t] = t < rows ? _mm512_loadu_ps(b + (n0 + j + s0 + t) * ldb + k0 + kk) : _mm512_setzero_ps();
                }
                transpose16(r, c);
                for (int q = 0; q < 16; q++) _mm512_mask_storeu_ps(d + (kk + q) * strip + s0, keep, c[q]);
            }
            for (; kk < kb; kk++) {
                for (size_t t = 0; t < lanes; t++) {
                    d[kk * strip + s0 + t] = t < rows ? b[(n0 + j + s0 + t) * ldb + k0 + kk] : 0;
                }
            }
        }
    }
}

// one MR × NR tile: pa [kb × MR], pb [kb × NR]; stores h rows and w columns of c (adding to them unless first)
QK_AVX512 static void tile(size_t kb, const float *pa, const float *pb, float *c, size_t ldc, size_t h, size_t w,
                           int first) {
    __m512 acc[MR][2];
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++) {
        acc[i][0] = _mm512_setzero_ps();
        acc[i][1] = _mm512_setzero_ps();
    }
    for (size_t kk = 0; kk < kb; kk++) {
        __m512 b0 = _mm512_loadu_ps(pb + kk * NR);
        __m512 b1 = _mm512_loadu_ps(pb + kk * NR + 16);
        const float *a = pa + kk * MR;
#pragma clang loop unroll(full)
        for (int i = 0; i < MR; i++) {
            __m512 av = _mm512_set1_ps(a[i]);
            acc[i][0] = _mm512_fmadd_ps(av, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(av, b1, acc[i][1]);
        }
    }
    __mmask16 m0 = w >= 16 ? 0xFFFF : (__mmask16)((1u << w) - 1);
    __mmask16 m1 = w >= 32 ? 0xFFFF : w <= 16 ? 0 : (__mmask16)((1u << (w - 16)) - 1);
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++) {
        if ((size_t)i >= h) break;
        float *y = c + i * ldc;
        __m512 y0 = acc[i][0], y1 = acc[i][1];
        if (!first) {
            y0 = _mm512_add_ps(y0, _mm512_maskz_loadu_ps(m0, y));
            y1 = _mm512_add_ps(y1, _mm512_maskz_loadu_ps(m1, y + 16));
        }
        _mm512_mask_storeu_ps(y, m0, y0);
        _mm512_mask_storeu_ps(y + 16, m1, y1);
    }
}

// C (+)= op(A) · op(B)ᵀ: op(A) [m × k] is a, or with ta aᵀ (a [k × m]); op(B) [n × k] is b, or with tb bᵀ (b [k × n])
static int product(int ta, int tb, size_t m, size_t n, size_t k, const float *a, size_t lda, const float *b, size_t ldb,
                   float *c, size_t ldc, size_t n0, size_t n1, int accumulate) {
    if (n1 > n) n1 = n;
    if (m == 0 || n0 >= n1) return 0;
    // packing buffers, one pair per thread for the thread's life (callers run on a fixed pool of threads): no
    // allocation and no page faults per call
    static _Thread_local float *pa, *pb;
    if (!pb) pb = aligned_alloc(64, (size_t)NB * KC * sizeof(float));
    if (!pa) pa = aligned_alloc(64, (size_t)MB * KC * sizeof(float));
    if (!pb || !pa) return -2;
    if (k == 0 && !accumulate) {
        for (size_t i = 0; i < m; i++) {
            for (size_t j = n0; j < n1; j++) c[i * ldc + j] = 0;
        }
    }
    for (size_t i0 = 0; i0 < m; i0 += MB) {
        size_t mb = m - i0 < MB ? m - i0 : MB;
        for (size_t k0 = 0; k0 < k; k0 += KC) {
            size_t kb = k - k0 < KC ? k - k0 : KC;
            int first = k0 == 0 && !accumulate;
            pack_rows(a, lda, ta, i0, mb, k0, kb, MR, pa);
            for (size_t j0 = n0; j0 < n1; j0 += NB) {
                size_t nb = n1 - j0 < NB ? n1 - j0 : NB;
                pack_rows(b, ldb, tb, j0, nb, k0, kb, NR, pb);
                for (size_t i = 0; i < mb; i += MR) {
                    for (size_t j = 0; j < nb; j += NR) {
                        tile(kb, pa + i * kb, pb + j * kb, c + (i0 + i) * ldc + j0 + j, ldc, mb - i < MR ? mb - i : MR,
                             nb - j < NR ? nb - j : NR, first);
                    }
                }
            }
        }
    }
    return 0;
}

int qk_sgemm_nt_avx512(size_t m, size_t n, size_t k, const float *a, size_t lda, const float *b, size_t ldb, float *c,
                       size_t ldc, size_t n0, size_t n1, int accumulate) {
    return product(0, 0, m, n, k, a, lda, b, ldb, c, ldc, n0, n1, accumulate);
}

int qk_sgemm_tn_avx512(size_t m, size_t n, size_t k, const float *a, size_t lda, const float *b, size_t ldb, float *c,
                       size_t ldc, size_t n0, size_t n1, int accumulate) {
    return product(1, 1, m, n, k, a, lda, b, ldb, c, ldc, n0, n1, accumulate);
}

int qk_sgemm_nn_avx512(size_t m, size_t n, size_t k, const float *a, size_t lda, const float *b, size_t ldb, float *c,
                       size_t ldc, size_t n0, size_t n1, int accumulate) {
    return product(0, 1, m, n, k, a, lda, b, ldb, c, ldc, n0, n1, accumulate);
}
