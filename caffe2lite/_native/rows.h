/* Row helpers shared by the C kernels (SparseNormalize, the sparse optimizers, the
 * SparseLengths lookups, the dense helpers).
 *
 * Why a header: the fused optimizer + max-norm pass (adagrad.c) must
 * renormalise a row with exactly the arithmetic of SparseNormalize's NATIVE
 * engine (sparse_normalize.c), so that fusing the two ops changes no bit.  One
 * definition, included by both.
 */
#ifndef CAFFE2LITE_ROWS_H
#define CAFFE2LITE_ROWS_H

#include <math.h>
#include <stdint.h>

#define LANES 16 /* fixed partial sums: vectorisable and deterministic */

/* Functions marked VECTOR_CLONES are also compiled for AVX2, and the CPU picks the clone
 * when the library loads (an ifunc: GCC or clang on x86-64 glibc; one plain build
 * elsewhere).  Vector width never changes a result here: every operation is an IEEE
 * operation on one element, and sums keep their fixed lanes. */
#if defined(__GNUC__) && defined(__x86_64__) && defined(__GLIBC__)
#define VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define VECTOR_CLONES
#endif

/* WIDE_CLONES adds an AVX-512 clone: for the lookups, where fewer instructions per row
 * keep more rows' cache misses in flight. */
#if defined(__GNUC__) && defined(__x86_64__) && defined(__GLIBC__)
#define WIDE_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define WIDE_CLONES
#endif

static inline int64_t index_at(const void *indices, int32_t index_bytes, int64_t i) {
    return index_bytes == 8 ? ((const int64_t *)indices)[i]
                            : (int64_t)((const int32_t *)indices)[i];
}

/* The bag offsets of the SparseLengths* lookups: offsets[0] = 0, offsets[k + 1] =
 * offsets[k] + lengths[k] for the m lengths.  Returns 0 when every length is >= 0 and
 * they sum to `total`, else 1 (then `offsets` is partly written).  It stops as soon
 * as the running total passes `total`, so it never overflows and the offsets it
 * accepts stay within INDICES. */
static inline int32_t lengths_to_offsets(const void *lengths, int32_t length_bytes, int64_t m,
                                         int64_t total, int64_t *restrict offsets) {
    int64_t run = 0;
    offsets[0] = 0;
    for (int64_t k = 0; k < m; k++) {
        const int64_t len = index_at(lengths, length_bytes, k);
        if (len < 0 || len > total - run) return 1;
        run += len;
        offsets[k + 1] = run;
    }
    return run != total;
}

/* Prefetch a row that is about to be updated (written). */
static inline void prefetch_row(const void *row, int64_t bytes) {
    for (int64_t o = 0; o < bytes; o += 64) __builtin_prefetch((const char *)row + o, 1, 3);
}

/* Prefetch a row that is about to be read, kept in every cache level. */
static inline void prefetch_row_for_read(const void *row, int64_t bytes) {
    for (int64_t o = 0; o < bytes; o += 64) __builtin_prefetch((const char *)row + o, 0, 3);
}

static inline float reduce_lanes(float *acc) {
    for (int w = LANES / 2; w > 0; w /= 2)
        for (int l = 0; l < w; l++) acc[l] += acc[l + w];
    return acc[0];
}

/* The work on one row, for a table of type T: the sum of squares in LANES fixed
 * partial sums (float), then the scaling unless the row is at or below the bound. */
#define DEFINE_NORMALIZE_ROW(NAME, T)                                                    \
    static inline void NAME(T *row, int64_t block, float norm, int32_t use_max_norm) {  \
        float acc[LANES] = {0};                                                          \
        int64_t j = 0;                                                                   \
        for (; j + LANES <= block; j += LANES)                                           \
            for (int l = 0; l < LANES; l++) {                                            \
                float x = (float)row[j + l];                                             \
                acc[l] += x * x;                                                         \
            }                                                                            \
        for (int l = 0; j < block; j++, l++) {                                           \
            float x = (float)row[j];                                                     \
            acc[l] += x * x;                                                             \
        }                                                                                \
        float row_norm = sqrtf(reduce_lanes(acc));                                       \
        if (use_max_norm && row_norm <= norm) return;                                    \
        float scale = norm / (row_norm + 1e-12f);                                        \
        for (j = 0; j < block; j++) row[j] = (T)((float)row[j] * scale);                 \
    }

#endif
