#ifndef QUANTKIT_CINT8KERNELS_H
#define QUANTKIT_CINT8KERNELS_H

#include <stddef.h>
#include <stdint.h>

/// Row kinds with an integer kernel (RowKernels.RowKind's raw values).
enum {
    QK_ROW_Q8_0 = 2,
    QK_ROW_Q4_0 = 3,
    QK_ROW_Q5_0 = 4,
    QK_ROW_Q4_K = 5,
    QK_ROW_Q6_K = 6,
};

/// y[r] (+)= row r · x̂ for r in [r0, r1): row r at w + r · row_bytes, n values per row; x̂ = q · d with q [n] int8
/// activations in their natural order, d [n / block] their steps (block 32 for Q8_0/Q4_0/Q5_0 rows, 256 for
/// Q4_K/Q6_K), sums [n / 16] the sums of each 16 consecutive q. AVX2 instructions (with FMA and F16C): call only on
/// a CPU whose /proc/cpuinfo lists avx2, fma and f16c. Returns 0, or -1 for a kind without a kernel.
int qk_int8_matvec_avx2(int kind, const void *w, size_t row_bytes, size_t r0, size_t r1, const int8_t *q,
                        const float *d, const int32_t *sums, size_t n, float *y, int accumulate);

#endif
