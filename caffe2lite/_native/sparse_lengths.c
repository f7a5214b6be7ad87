/* SparseLengths{Sum,Mean,WeightedSum} forward on CPU: one pass per bag, rows summed in registers.
 *
 * Why C: NumPy has to gather every looked-up row into a buffer (np.take copies
 * each 256-byte row with a memmove call) and then add the buffers, and it
 * cannot prefetch; gathering alone took longer than PyTorch's whole
 * EmbeddingBag.  Here each row is added straight into its bag's output while
 * the rows AHEAD positions further on are prefetched (BENCHMARKS.md, section
 * sparse-ops).
 *
 * Plain C, no Python headers: loaded with ctypes by caffe2lite/_native (ctypes
 * releases the GIL, so operators/_parallel.py runs ranges of bags on threads).
 * The caller (operators/_segments.py) has already checked every index and
 * length and passes `offsets`, the m + 1 running totals of LENGTHS.  Each bag
 * is summed left to right in float32 starting from 0 -- Caffe2's loop, and the
 * NumPy path's order -- with the weight applied to each row first, so results
 * are the same bits on every run, for any number of threads.
 */
#include <stdint.h>
#include <string.h>

#define AHEAD 16 /* rows prefetched ahead of the one being added */

int32_t caffe2lite_sparse_lengths_abi(void) { return 1; }

static inline int64_t index_at(const void *indices, int32_t index_bytes, int64_t i) {
    return index_bytes == 8 ? ((const int64_t *)indices)[i]
                            : (int64_t)((const int32_t *)indices)[i];
}

static inline void prefetch_row(const char *row, int64_t row_bytes) {
    for (int64_t b = 0; b < row_bytes; b += 64)
        __builtin_prefetch(row + b, 0, 3);
}

/* IEEE half to float, exactly (subnormals, infinities and NaNs included). */
static inline float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1fu) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112u) << 23) | (mant << 13);
    } else if (mant == 0) {
        bits = sign;
    } else { /* subnormal: normalise */
        exp = 113u;
        while (!(mant & 0x400u)) {
            mant <<= 1;
            exp--;
        }
        bits = sign | (exp << 23) | ((mant & 0x3ffu) << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

#define LOAD_F32(row, d) ((row)[d])
#define LOAD_F16(row, d) half_to_float((row)[d])

/* Clones for AVX-512 and AVX2 picked at load time (glibc ifunc): fewer
 * instructions per row keep more rows' cache misses in flight. */
#if defined(__GNUC__) && defined(__x86_64__) && defined(__GLIBC__)
#define WIDE_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define WIDE_CLONES
#endif

/* For the bags k in [bag_begin, bag_end):
 *   out[k][d] = sum over p in [offsets[k], offsets[k+1]) of w_p * table[indices[p]][d]
 * with w_p = weights[p], or 1 (no multiply) when weights is NULL.  ACC(k) is the
 * accumulator of bag k: a local array the compiler keeps in registers when the
 * width W is a constant, else the output row itself. */
#define SUM_BAGS(T, LOAD, W, LOCAL)                                                       \
    const int64_t last = offsets[bag_end];                                                \
    for (int64_t p = offsets[bag_begin]; p < offsets[bag_begin] + AHEAD && p < last; p++) \
        prefetch_row((const char *)(table + index_at(indices, index_bytes, p) * (W)),    \
                     (W) * (int64_t)sizeof(T));                                           \
    for (int64_t k = bag_begin; k < bag_end; k++) {                                       \
        float local[LOCAL ? (W) : 1];                                                     \
        float *acc = LOCAL ? local : out + k * (W);                                       \
        for (int64_t d = 0; d < (W); d++)                                                 \
            acc[d] = 0.0f;                                                                \
        for (int64_t p = offsets[k]; p < offsets[k + 1]; p++) {                           \
            if (p + AHEAD < last)                                                         \
                prefetch_row((const char *)(table + index_at(indices, index_bytes,       \
                                                             p + AHEAD) * (W)),           \
                             (W) * (int64_t)sizeof(T));                                   \
            const T *row = table + index_at(indices, index_bytes, p) * (W);               \
            if (weights) {                                                                \
                const float w = weights[p];                                               \
                for (int64_t d = 0; d < (W); d++)                                         \
                    acc[d] += w * LOAD(row, d);                                           \
            } else {                                                                      \
                for (int64_t d = 0; d < (W); d++)                                         \
                    acc[d] += LOAD(row, d);                                               \
            }                                                                             \
        }                                                                                 \
        if (LOCAL)                                                                        \
            memcpy(out + k * (W), acc, (size_t)(W) * sizeof(float));                      \
    }

#define SUM_ARGS(T)                                                                       \
    const T *restrict table, int64_t width, const void *indices, int32_t index_bytes,     \
        const int64_t *offsets, const float *weights, int64_t bag_begin, int64_t bag_end, \
        float *restrict out

#define DEFINE_FIXED(NAME, T, LOAD, W)                                                    \
    WIDE_CLONES static void NAME##_##W(SUM_ARGS(T)) {                                     \
        (void)width;                                                                      \
        SUM_BAGS(T, LOAD, W, 1)                                                           \
    }

#define DEFINE_SUM(NAME, T, LOAD)                                                         \
    DEFINE_FIXED(NAME, T, LOAD, 16)                                                       \
    DEFINE_FIXED(NAME, T, LOAD, 32)                                                       \
    DEFINE_FIXED(NAME, T, LOAD, 64)                                                       \
    DEFINE_FIXED(NAME, T, LOAD, 128)                                                      \
    WIDE_CLONES static void NAME##_any(SUM_ARGS(T)) { SUM_BAGS(T, LOAD, width, 0) }       \
    void NAME(SUM_ARGS(T)) {                                                              \
        switch (width) {                                                                  \
        case 16: NAME##_16(table, width, indices, index_bytes, offsets, weights,          \
                           bag_begin, bag_end, out); break;                               \
        case 32: NAME##_32(table, width, indices, index_bytes, offsets, weights,          \
                           bag_begin, bag_end, out); break;                               \
        case 64: NAME##_64(table, width, indices, index_bytes, offsets, weights,          \
                           bag_begin, bag_end, out); break;                               \
        case 128: NAME##_128(table, width, indices, index_bytes, offsets, weights,        \
                             bag_begin, bag_end, out); break;                             \
        default: NAME##_any(table, width, indices, index_bytes, offsets, weights,         \
                            bag_begin, bag_end, out);                                     \
        }                                                                                 \
    }

DEFINE_SUM(caffe2lite_sparse_lengths_sum_f32, float, LOAD_F32)
DEFINE_SUM(caffe2lite_sparse_lengths_sum_f16, uint16_t, LOAD_F16)
