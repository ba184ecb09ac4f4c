// What both integer-tile files (Int8Gemm.c: AVX-512 VNNI, Int8GemmAVX2.c: AVX2) share: weight rows unpacked a strip
// of `rs` rows at a time (one vector of int32 lanes: 16 or 8), the tokens' sums in the form the tiles read, and the
// calling thread's buffers. Private to CRowKernels (not under include/).
//
// A strip holds, per super-block of 256 columns (Q4_K, Q6_K) or block of 32 (Q8_0, Q4_0, Q5_0) b:
//   q[b]   the values as bytes, k-major in groups of 4 columns: group g is rs rows × 4 bytes
//   sc[b]  each sub-block's scale per row: int32, or as the int16 pair (sc, sc) for pmaddwd (sc_pairs)
//   cw[b]  8 int16 pairs per row: the factors of the 16-value sums 2p and 2p + 1 (Q4_K: m_j for both; Q6_K: 32·sc)
//   d[b], dc[b]  d and the correction's float (−dmin, or −d)
#ifndef QUANTKIT_INT8STRIPS_H
#define QUANTKIT_INT8STRIPS_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "BlockBits.h"
#include "CRowKernels.h"

typedef struct {
    uint8_t *q;
    int32_t *sc, *cw;
    float *d, *dc;
} strip_t;

// one Q4_K super-block (144 bytes) → values 0…15 in natural order, 8 scales, 8 mins, d, dmin
QK_AVX2 static inline void unpack_q4_K(const uint8_t *b, uint8_t q[256], int sc[8], int m[8], float *d,
                                       float *dmin) {
    *d = f16_at(b);
    *dmin = f16_at(b + 2);
    const uint8_t *qs = b + 16;
    uint64_t scales, mins;
    q4_K_scales_mins(b + 4, &scales, &mins);
    for (int j = 0; j < 8; j++) {
        sc[j] = (int)((scales >> (8 * j)) & 0xFF);
        m[j] = (int)((mins >> (8 * j)) & 0xFF);
    }
    for (int p = 0; p < 4; p++) {   // sub-blocks 2p (low nibbles) and 2p + 1 (high) share 32 bytes
        for (int i = 0; i < 32; i++) {
            q[64 * p + i] = qs[32 * p + i] & 0xF;
            q[64 * p + 32 + i] = qs[32 * p + i] >> 4;
        }
    }
}

// one Q6_K super-block (210 bytes) → values 0…63 (the −32 not taken off) in natural order, 16 scales, d
QK_AVX2 static inline void unpack_q6_K(const uint8_t *b, uint8_t q[256], int sc[16], float *d) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *s = (const int8_t *)(b + 192);
    *d = f16_at(b + 208);
    for (int j = 0; j < 16; j++) sc[j] = s[j];
    for (int h = 0; h < 2; h++) {
        for (int l = 0; l < 32; l++) {
            const uint8_t a = ql[64 * h + l], c = ql[64 * h + 32 + l], hi = qh[32 * h + l];
            q[128 * h + l] = (a & 0xF) | ((hi & 3) << 4);
            q[128 * h + 32 + l] = (c & 0xF) | (((hi >> 2) & 3) << 4);
            q[128 * h + 64 + l] = (a >> 4) | (((hi >> 4) & 3) << 4);
            q[128 * h + 96 + l] = (c >> 4) | (((hi >> 6) & 3) << 4);
        }
    }
}

static inline int32_t pair16(int lo, int hi) { return (int32_t)(((uint32_t)(uint16_t)hi << 16) | (uint16_t)lo); }

// rows [r0, r0 + h) (h ≤ rs; the others zero) of nb super-blocks each into strip s
QK_AVX2 static inline void pack_strip(int kind, const uint8_t *w, size_t row_bytes, size_t r0, size_t h, size_t nb,
                                      size_t rs, int sc_pairs, strip_t *s) {
    const int nsub = kind == QK_ROW_Q4_K ? 8 : 16, block_bytes = kind == QK_ROW_Q4_K ? 144 : 210;
    uint8_t q[256];
    int sc[16], m[8];
    for (size_t b = 0; b < nb; b++) {
        uint8_t *qb = s->q + b * rs * 256;
        int32_t *scb = s->sc + b * nsub * rs, *cwb = s->cw + b * 8 * rs;
        float *db = s->d + b * rs, *dcb = s->dc + b * rs;
        for (size_t r = 0; r < rs; r++) {
            float d = 0, dc = 0;
            if (r < h) {
                const uint8_t *blk = w + (r0 + r) * row_bytes + b * block_bytes;
                if (kind == QK_ROW_Q4_K) {
                    float dmin;
                    unpack_q4_K(blk, q, sc, m, &d, &dmin);
                    dc = -dmin;
                    for (int p = 0; p < 8; p++) cwb[p * rs + r] = pair16(m[p], m[p]);   // m_j for both 16s of j
                } else {
                    unpack_q6_K(blk, q, sc, &d);
                    dc = -d;
                    for (int p = 0; p < 8; p++) cwb[p * rs + r] = pair16(32 * sc[2 * p], 32 * sc[2 * p + 1]);
                }
                for (int j = 0; j < nsub; j++) scb[j * rs + r] = sc_pairs ? pair16(sc[j], sc[j]) : sc[j];
                for (int g = 0; g < 64; g++) memcpy(qb + g * 4 * rs + r * 4, q + 4 * g, 4);
            } else {
                for (int p = 0; p < 8; p++) cwb[p * rs + r] = 0;
                for (int j = 0; j < nsub; j++) scb[j * rs + r] = 0;
                for (int g = 0; g < 64; g++) memset(qb + g * 4 * rs + r * 4, 0, 4);
            }
            db[r] = d;
            dcb[r] = dc;
        }
    }
}

// the offset o that makes a block of 32's values unsigned: Q8_0 128 (−128…127), Q4_0 8, Q5_0 16
static inline int offset_32(int kind) { return kind == QK_ROW_Q8_0 ? 128 : kind == QK_ROW_Q4_0 ? 8 : 16; }

// one block of 32 (Q8_0: 34 bytes, Q4_0: 18, Q5_0: 22) → its values plus the offset o as unsigned bytes (Q8_0 with
// signed_q8: its signed bytes as they are), and d
QK_AVX2 static inline void unpack_32(int kind, const uint8_t *b, int signed_q8, uint8_t q[32], float *d) {
    *d = f16_at(b);
    if (kind == QK_ROW_Q8_0) {
        for (int i = 0; i < 32; i++) q[i] = signed_q8 ? b[2 + i] : (uint8_t)((int)(int8_t)b[2 + i] + 128);
    } else if (kind == QK_ROW_Q4_0) {
        for (int i = 0; i < 16; i++) {
            q[i] = b[2 + i] & 0xF;
            q[16 + i] = b[2 + i] >> 4;
        }
    } else {   // Q5_0: 32 fifth bits, then the nibbles
        const uint32_t h = u32_at(b + 2);
        for (int i = 0; i < 16; i++) {
            q[i] = (b[6 + i] & 0xF) | (((h >> i) & 1) << 4);
            q[16 + i] = (b[6 + i] >> 4) | (((h >> (16 + i)) & 1) << 4);
        }
    }
}

// rows [r0, r0 + h) of nb blocks of 32 → strip s (q: 8 groups of rs rows × 4 bytes per block; d: rs floats per block)
QK_AVX2 static inline void pack_strip_32(int kind, const uint8_t *w, size_t row_bytes, size_t r0, size_t h,
                                         size_t nb, size_t rs, int signed_q8, strip_t *s) {
    const int block_bytes = kind == QK_ROW_Q8_0 ? 34 : kind == QK_ROW_Q4_0 ? 18 : 22;
    uint8_t q[32];
    for (size_t b = 0; b < nb; b++) {
        uint8_t *qb = s->q + b * rs * 32;
        for (size_t r = 0; r < rs; r++) {
            float d = 0;
            if (r < h) {
                unpack_32(kind, w + (r0 + r) * row_bytes + b * block_bytes, signed_q8, q, &d);
            } else {
                memset(q, 0, 32);
            }
            for (int g = 0; g < 8; g++) memcpy(qb + g * 4 * rs + r * 4, q + 4 * g, 4);
            s->d[b * rs + r] = d;
        }
    }
}

// *p with room for `need` bytes, 64-byte aligned (freed and allocated again when it grows); NULL when there is none
static inline void *grow(void *p, size_t *cap, size_t need) {
    if (need <= *cap) return p;
    free(p);
    *cap = 0;
    void *n = NULL;
    if (posix_memalign(&n, 64, need) != 0) return NULL;
    *cap = need;
    return n;
}

// a strip's bytes for rs rows of nb blocks of `block` columns, and the strip laid out in them
static inline size_t strip_bytes(int k_quant, int nsub, size_t nb, size_t rs, size_t block) {
    return nb * rs * block + (k_quant ? nb * nsub * rs * 4 + nb * 8 * rs * 4 : 0) + 2 * nb * rs * 4;
}

static inline strip_t strip_at(uint8_t *mem, int k_quant, int nsub, size_t nb, size_t rs, size_t block) {
    const size_t q_bytes = nb * rs * block, sc_bytes = k_quant ? nb * nsub * rs * 4 : 0,
                 cw_bytes = k_quant ? nb * 8 * rs * 4 : 0, f_bytes = nb * rs * 4;
    strip_t s = {mem, (int32_t *)(mem + q_bytes), (int32_t *)(mem + q_bytes + sc_bytes),
                 (float *)(mem + q_bytes + sc_bytes + cw_bytes),
                 (float *)(mem + q_bytes + sc_bytes + cw_bytes + f_bytes)};
    return s;
}

// the tokens' sums as the tiles read them: per token its 16-value sums as int16 (K-quants: |sum| ≤ 16 · 127), or
// o · Σ x per block of 32 as int32 (Q8_0 with signed_q8: 0, nothing to take off)
static inline size_t sums_bytes(int k_quant, size_t n) { return k_quant ? (n / 16) * 2 : (n / 32) * 4; }

static inline void prepare_sums(int kind, int k_quant, int signed_q8, const int32_t *sums, size_t t_count, size_t n,
                                void *mem) {
    if (k_quant) {
        int16_t *s16 = (int16_t *)mem;
        for (size_t i = 0; i < t_count * (n / 16); i++) s16[i] = (int16_t)sums[i];
    } else {
        int32_t *xo = (int32_t *)mem;
        const int32_t o = kind == QK_ROW_Q8_0 && signed_q8 ? 0 : offset_32(kind);
        for (size_t i = 0; i < t_count * (n / 32); i++) xo[i] = o * (sums[2 * i] + sums[2 * i + 1]);
    }
}

#define TILE_TOKENS_MAX 8

// the tokens of one tile (slots past `count` hold copies of the last token, whose results are not stored): per token
// its int8 row, steps, sums as prepare_sums left them, and where its values of the strip's rows go
typedef struct {
    const int8_t *x[TILE_TOKENS_MAX];
    const float *dx[TILE_TOKENS_MAX];
    const int16_t *s16[TILE_TOKENS_MAX];
    const int32_t *xo[TILE_TOKENS_MAX];
    float *y[TILE_TOKENS_MAX];
    size_t count;
} tile_tokens_t;

// one tile: the strip's first h rows times the tokens, stored (or added) at tk->y
typedef void (*tile_fn)(int kind, const strip_t *s, size_t nb, const tile_tokens_t *tk, size_t h, int accumulate);

// the buffers a thread keeps for its life: the unpacked strip and the tokens' sums
typedef struct {
    uint8_t *strip, *sums;
    size_t strip_cap, sums_cap;
} tile_buffers_t;

// qk_int8_gemm_*'s loop, for strips of rs rows and tiles of tm tokens (tm ≤ TILE_TOKENS_MAX); sc_pairs: scales as
// int16 pairs (pack_strip), signed_q8: Q8_0 rows keep their signed bytes
QK_AVX2 static inline int int8_gemm(int kind, const void *w, size_t row_bytes, size_t r0, size_t r1, const int8_t *q,
                                    const float *d, const int32_t *sums, size_t t_count, size_t n, float *y,
                                    size_t ldy, int accumulate, size_t rs, size_t tm, int sc_pairs, int signed_q8,
                                    tile_buffers_t *buf, tile_fn tile) {
    const int k_quant = kind == QK_ROW_Q4_K || kind == QK_ROW_Q6_K;
    if (!k_quant && kind != QK_ROW_Q8_0 && kind != QK_ROW_Q4_0 && kind != QK_ROW_Q5_0) return -1;
    const size_t block = k_quant ? 256 : 32;
    if (n % block != 0 || r1 <= r0 || t_count == 0) return 0;
    const size_t nb = n / block;
    const int nsub = kind == QK_ROW_Q4_K ? 8 : 16;
    buf->strip = grow(buf->strip, &buf->strip_cap, strip_bytes(k_quant, nsub, nb, rs, block));
    buf->sums = grow(buf->sums, &buf->sums_cap, t_count * sums_bytes(k_quant, n));
    if (!buf->strip || !buf->sums) return -2;
    strip_t s = strip_at(buf->strip, k_quant, nsub, nb, rs, block);
    prepare_sums(kind, k_quant, signed_q8, sums, t_count, n, buf->sums);
    const int16_t *s16 = (const int16_t *)buf->sums;
    const int32_t *xo = (const int32_t *)buf->sums;
    for (size_t r = r0; r < r1; r += rs) {
        const size_t h = r1 - r < rs ? r1 - r : rs;
        if (k_quant) {
            pack_strip(kind, (const uint8_t *)w, row_bytes, r, h, nb, rs, sc_pairs, &s);
        } else {
            pack_strip_32(kind, (const uint8_t *)w, row_bytes, r, h, nb, rs, signed_q8, &s);
        }
        for (size_t t0 = 0; t0 < t_count; t0 += tm) {
            tile_tokens_t tk;
            tk.count = t_count - t0 < tm ? t_count - t0 : tm;
            for (size_t i = 0; i < tm; i++) {
                const size_t t = i < tk.count ? t0 + i : t_count - 1;
                tk.x[i] = q + t * n;
                tk.dx[i] = d + t * nb;
                tk.s16[i] = s16 + t * (n / 16);
                tk.xo[i] = xo + t * nb;
                tk.y[i] = y + t * ldy + r;
            }
            tile(kind, &s, nb, &tk, h, accumulate);
        }
    }
    return 0;
}

#endif
