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

// rows [n0, n0 + nb) of a matrix, columns [k0, k0 + kb) → pb: for each strip of `strip` rows, kb × strip values
// k-major. The matrix is b [rows × k] (row stride ldb), or with `trans` its transpose stored as b [k × rows], whose
// strips are contiguous runs.
static void pack_rows(const float *b, size_t ldb, int trans, size_t n0, size_t nb, size_t k0, size_t kb, size_t strip,
                      float *pb) {
    for (size_t j = 0; j < nb; j += strip) {
        size_t w = nb - j < strip ? nb - j : strip;
        float *d = pb + j * kb;
        if (trans) {
            for (size_t kk = 0; kk < kb; kk++) {
                const float *src = b + (k0 + kk) * ldb + n0 + j;
                for (size_t t = 0; t < w; t++) d[kk * strip + t] = src[t];
            }
        } else {
            for (size_t t = 0; t < w; t++) {
                const float *src = b + (n0 + j + t) * ldb + k0;
                for (size_t kk = 0; kk < kb; kk++) d[kk * strip + t] = src[kk];
            }
        }
        for (size_t t = w; t < strip; t++) {
            for (size_t kk = 0; kk < kb; kk++) d[kk * strip + t] = 0;
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

// C (+)= op(A) · op(B)ᵀ: op(A) [m × k] is a, or with trans aᵀ (a [k × m]); op(B) [n × k] likewise
static int product(int trans, size_t m, size_t n, size_t k, const float *a, size_t lda, const float *b, size_t ldb,
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
            pack_rows(a, lda, trans, i0, mb, k0, kb, MR, pa);
            for (size_t j0 = n0; j0 < n1; j0 += NB) {
                size_t nb = n1 - j0 < NB ? n1 - j0 : NB;
                pack_rows(b, ldb, trans, j0, nb, k0, kb, NR, pb);
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
    return product(0, m, n, k, a, lda, b, ldb, c, ldc, n0, n1, accumulate);
}

int qk_sgemm_tn_avx512(size_t m, size_t n, size_t k, const float *a, size_t lda, const float *b, size_t ldb, float *c,
                       size_t ldc, size_t n0, size_t n1, int accumulate) {
    return product(1, m, n, k, a, lda, b, ldb, c, ldc, n0, n1, accumulate);
}
