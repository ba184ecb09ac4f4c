#ifndef QUANTKIT_CROWKERNELS_H
#define QUANTKIT_CROWKERNELS_H

#include <stddef.h>
#include <stdint.h>

/// Row kinds (RowKernels.RowKind's raw values).
enum {
    QK_ROW_F32 = 0,
    QK_ROW_BF16 = 1,
    QK_ROW_Q8_0 = 2,
    QK_ROW_Q4_0 = 3,
    QK_ROW_Q5_0 = 4,
    QK_ROW_Q4_K = 5,
    QK_ROW_Q6_K = 6,
    QK_ROW_F16 = 7,
};

/// y[r] (+)= row r · x̂ for r in [r0, r1): row r at w + r · row_bytes, n values per row; x̂ = q · d with q [n] int8
/// activations in their natural order, d [n / block] their steps (block 32 for Q8_0/Q4_0/Q5_0 rows, 256 for
/// Q4_K/Q6_K), sums [n / 16] the sums of each 16 consecutive q. AVX2 instructions (with FMA and F16C): call only on
/// a CPU whose /proc/cpuinfo lists avx2, fma and f16c. Returns 0, or -1 for a kind without a kernel.
int qk_int8_matvec_avx2(int kind, const void *w, size_t row_bytes, size_t r0, size_t r1, const int8_t *q,
                        const float *d, const int32_t *sums, size_t n, float *y, int accumulate);

/// y[r] (+)= row r · x for r in [r0, r1): row r at w + r · row_bytes, n values per row (a multiple of the kind's block
/// and of 8), x [n] f32 — the dequantized row's product up to float rounding. AVX2 with FMA and F16C, as above.
/// Returns 0, -1 for an unknown kind, -2 when memory for x's reordered copy (Q4_K) could not be had.
int qk_f32_matvec_avx2(int kind, const void *w, size_t row_bytes, size_t r0, size_t r1, const float *x, size_t n,
                       float *y, int accumulate);

/// count f16 (bf16 = 0) or bf16 (bf16 = 1) values at src as f32 at dst (exact). AVX2/F16C as qk_f32_matvec_avx2.
void qk_widen_16bit_avx2(const void *src, float *dst, size_t count, int bf16);

/// qk_f32_matvec_avx2's products in 16 lanes (CRowKernels/FloatKernels512.c): call only where /proc/cpuinfo lists
/// avx512f, avx2, fma and f16c. Returns as qk_f32_matvec_avx2.
int qk_f32_matvec_avx512(int kind, const void *w, size_t row_bytes, size_t r0, size_t r1, const float *x, size_t n,
                         float *y, int accumulate);

/// C (+)= A · Bᵀ for the columns [n0, n1) of C: A [m × k] (row stride lda), B [n × k] (ldb), C [m × n] (ldc), all
/// row-major f32; accumulate = 0 overwrites C's columns. Callers split [0, n) among threads (multiples of 32 keep the
/// tiles whole). AVX-512F with FMA: call only on a CPU whose /proc/cpuinfo lists avx512f. Each value is summed in an
/// order that depends on k only. Returns 0, or -2 when memory for the calling thread's packed blocks (772 KiB, kept
/// for the thread's life) could not be had.
int qk_sgemm_nt_avx512(size_t m, size_t n, size_t k, const float *a, size_t lda, const float *b, size_t ldb, float *c,
                       size_t ldc, size_t n0, size_t n1, int accumulate);

/// The same with A and B stored transposed: C (+)= Aᵀ · B for A [k × m] (row stride lda) and B [k × n] (ldb), e.g.
/// XᵀX, a Gram matrix of X's columns, with a = b = X. Returns as qk_sgemm_nt_avx512.
int qk_sgemm_tn_avx512(size_t m, size_t n, size_t k, const float *a, size_t lda, const float *b, size_t ldb, float *c,
                       size_t ldc, size_t n0, size_t n1, int accumulate);

/// y[t · ldy + r] (+)= row r · x̂_t for r in [r0, r1) and t in [0, t_count): rows of kind Q4_K or Q6_K (x̂ rounded per
/// 256 values as llama.cpp's Q8_K) or Q8_0, Q4_0, Q5_0 (x̂ rounded per 32 as its Q8_0); row r at w + r · row_bytes, n
/// values. x̂_t = q · d: q [t_count × n] int8 in natural order, d [t_count × n / block] steps, sums [t_count × n / 16]
/// sums of each 16 q. The integer sums of qk_int8_matvec_avx2, for many tokens at once. AVX-512 VNNI: call only on a
/// CPU whose /proc/cpuinfo lists avx512f, avx512bw and avx512_vnni. Returns 0, -1 for another kind, -2 when memory
/// for the calling thread's unpacked rows (kept for its life) could not be had.
int qk_int8_gemm_avx512vnni(int kind, const void *w, size_t row_bytes, size_t r0, size_t r1, const int8_t *q,
                            const float *d, const int32_t *sums, size_t t_count, size_t n, float *y, size_t ldy,
                            int accumulate);

/// qk_int8_gemm_avx512vnni's sums for CPUs with AVX2 and without AVX-512 VNNI (vpmaddubsw, 8 rows × 4 tokens per
/// tile). Call only where /proc/cpuinfo lists avx2, fma and f16c; q must hold −127…127 (the rounding's range). Returns as
/// qk_int8_gemm_avx512vnni.
int qk_int8_gemm_avx2(int kind, const void *w, size_t row_bytes, size_t r0, size_t r1, const int8_t *q, const float *d,
                      const int32_t *sums, size_t t_count, size_t n, float *y, size_t ldy, int accumulate);

/// The same for C (+)= A · B with A [m × k] (row stride lda) and B [k × n] (ldb), e.g. attention's softmax · V.
int qk_sgemm_nn_avx512(size_t m, size_t n, size_t k, const float *a, size_t lda, const float *b, size_t ldb, float *c,
                       size_t ldc, size_t n0, size_t n1, int accumulate);

/// x [n] rounded to int8 per `block` values (32: llama.cpp's Q8_0, 256: its Q8_K), exactly as RowKernels.Int8Dot.quantize
/// rounds (the reference): values [n] in its order (per 32: even-indexed, then odd-indexed), steps [n / block], sums
/// [n / 16] of each 16 values, and bytes [n] the values in natural order. AVX-512 (avx512f, avx512bw, avx512vl, f16c).
void qk_round_int8_avx512(const float *x, size_t n, size_t block, int16_t *values, float *steps, int32_t *sums,
                          int8_t *bytes);

#endif
