// The row loop both float-kernel files (FloatKernels.c: AVX2, FloatKernels512.c: AVX-512F) define around their own
// row functions, which carry the same names in each: f32_row, bf16_row, f16_row, q8_0_row, q4_0_row, q5_0_row,
// q4_K_row (x reordered by the file's q4_K_order, Σ x per 32 by its x_sums) and q6_K_row. Private to CRowKernels.
#ifndef QUANTKIT_FLOATMATVEC_H
#define QUANTKIT_FLOATMATVEC_H

#include <stdlib.h>
#include "CRowKernels.h"

#define QK_FLOAT_MATVEC(name, attr)                                                                               \
    attr int name(int kind, const void *w, size_t row_bytes, size_t r0, size_t r1, const float *x, size_t n,      \
                  float *y, int accumulate) {                                                                     \
        float *xp = NULL, *xsum = NULL;                                                                           \
        if (kind == QK_ROW_Q4_K) { /* x reordered, and Σ x per 32: made once per call */                          \
            xp = malloc((n + n / 32) * sizeof(float));                                                            \
            if (xp == NULL) return -2;                                                                            \
            q4_K_order(x, n, xp);                                                                                 \
            xsum = xp + n;                                                                                        \
            x_sums(x, n, xsum);                                                                                   \
        }                                                                                                         \
        int status = 0;                                                                                           \
        for (size_t r = r0; r < r1 && status == 0; r++) {                                                         \
            const uint8_t *row = (const uint8_t *)w + r * row_bytes;                                              \
            float v = 0;                                                                                          \
            switch (kind) {                                                                                       \
            case QK_ROW_F32: v = f32_row(row, x, n); break;                                                       \
            case QK_ROW_BF16: v = bf16_row(row, x, n); break;                                                     \
            case QK_ROW_F16: v = f16_row(row, x, n); break;                                                       \
            case QK_ROW_Q8_0: v = q8_0_row(row, x, n / 32); break;                                                \
            case QK_ROW_Q4_0: v = q4_0_row(row, x, n / 32); break;                                                \
            case QK_ROW_Q5_0: v = q5_0_row(row, x, n / 32); break;                                                \
            case QK_ROW_Q4_K: v = q4_K_row(row, xp, xsum, n / 256); break;                                        \
            case QK_ROW_Q6_K: v = q6_K_row(row, x, n / 256); break;                                               \
            default: status = -1; continue;                                                                       \
            }                                                                                                     \
            y[r] = accumulate ? y[r] + v : v;                                                                     \
        }                                                                                                         \
        free(xp);                                                                                                 \
        return status;                                                                                            \
    }

#endif
