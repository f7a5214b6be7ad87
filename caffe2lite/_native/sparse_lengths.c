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
 * The checks are fused in, so a lookup reads INDICES and LENGTHS once
 * (separate NumPy passes for min/max, the lengths' sum and their prefix sum
 * cost ~10% of the whole lookup): caffe2lite_sparse_lengths_offsets validates
 * LENGTHS while it builds `offsets`, the m + 1 running totals, and the sum
 * checks every index before its row is read.  On bad input they only report
 * it: the caller re-runs its Python checks to name the culprit, and drops
 * `out`, which is its own fresh array.
 *
 * Threads take chunks of bags from a shared counter until none are left, so
 * a thread that starts late just takes fewer chunks, and the caller's thread
 * returns as soon as every bag is summed, without waiting for a thread that
 * never got work.  Each bag is summed left to right in float32 starting from 0
 * -- Caffe2's loop, and the NumPy path's order -- with the weight applied to
 * each row first, so results are the same bits on every run, for any number
 * of threads and any chunking.
 */
#include <stdint.h>
#include <string.h>

#include "rows.h" /* index_at, lengths_to_offsets, prefetch_row_for_read, WIDE_CLONES */

#define AHEAD 16 /* rows prefetched ahead of the one being added */

int32_t caffe2lite_sparse_lengths_abi(void) { return 3; }

/* The bag offsets of `lengths` (rows.h: lengths_to_offsets). */
int32_t caffe2lite_sparse_lengths_offsets(const void *lengths, int32_t length_bytes, int64_t m,
                                         int64_t total, int64_t *restrict offsets) {
    return lengths_to_offsets(lengths, length_bytes, m, total, offsets);
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

/* For the bags k in [bag_begin, bag_end), out_stride floats apart in `out` (the width
 * for a matrix of the sums alone, more when they are columns of a wider one, e.g.
 * Concat's output):
 *   out[k][d] = sum over p in [offsets[k], offsets[k+1]) of w_p * table[indices[p]][d]
 * with w_p = weights[p], or 1 (no multiply) when weights is NULL.  ACC(k) is the
 * accumulator of bag k: a local array the compiler keeps in registers when the
 * width W is a constant, else the output row itself.  Returns 1 at the first
 * index outside [0, n_rows) (its row is neither prefetched nor read), else 0. */
#define IN_RANGE(r) ((uint64_t)(r) < (uint64_t)n_rows)
#define PREFETCH_AT(p, T, W)                                                              \
    do {                                                                                  \
        const int64_t r_ = index_at(indices, index_bytes, (p));                           \
        if (IN_RANGE(r_))                                                                 \
            prefetch_row_for_read(table + r_ * (W), (W) * (int64_t)sizeof(T));     \
    } while (0)
#define SUM_BAGS(T, LOAD, W, LOCAL)                                                       \
    const int64_t last = offsets[bag_end];                                                \
    for (int64_t p = offsets[bag_begin]; p < offsets[bag_begin] + AHEAD && p < last; p++) \
        PREFETCH_AT(p, T, W);                                                             \
    for (int64_t k = bag_begin; k < bag_end; k++) {                                       \
        float local[LOCAL ? (W) : 1];                                                     \
        float *acc = LOCAL ? local : out + k * out_stride;                                \
        for (int64_t d = 0; d < (W); d++)                                                 \
            acc[d] = 0.0f;                                                                \
        for (int64_t p = offsets[k]; p < offsets[k + 1]; p++) {                           \
            if (p + AHEAD < last)                                                         \
                PREFETCH_AT(p + AHEAD, T, W);                                             \
            const int64_t r = index_at(indices, index_bytes, p);                          \
            if (!IN_RANGE(r))                                                             \
                return 1;                                                                 \
            const T *row = table + r * (W);                                               \
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
            memcpy(out + k * out_stride, acc, (size_t)(W) * sizeof(float));               \
    }                                                                                     \
    return 0;

#define SUM_ARGS(T)                                                                       \
    const T *restrict table, int64_t n_rows, int64_t width, const void *indices,          \
        int32_t index_bytes, const int64_t *offsets, const float *weights,                \
        int64_t bag_begin, int64_t bag_end, int64_t out_stride, float *restrict out
#define SUM_CALL                                                                          \
    table, n_rows, width, indices, index_bytes, offsets, weights, b0, b1, out_stride, out

#define DEFINE_FIXED(NAME, T, LOAD, W)                                                    \
    WIDE_CLONES static int NAME##_##W(SUM_ARGS(T)) {                                      \
        (void)width;                                                                      \
        SUM_BAGS(T, LOAD, W, 1)                                                           \
    }

/* NAME(..., n_bags, chunk, state, spin, out_stride, out): the bags [0, n_bags), taken
 * `chunk` at a time by every thread working on this call.  `state` (zeroed by the caller) is
 * shared by them: state[NEXT] the next bag to take, state[DONE] the bags summed,
 * state[FAULT] set when a thread met an out-of-range index (it then moves NEXT to
 * the end so the others stop too).  The caller's own thread passes spin > 0: once
 * nothing is left to take it waits, at most `spin` pause instructions, for the
 * others to finish their chunks -- cheaper than being woken by them.  Returns
 * 1 on a fault, else 0 once every bag is summed, else 2 (others still busy: the
 * caller must wait for them and then read state[FAULT]). */
enum { NEXT, DONE, FAULT };

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

#define DEFINE_SUM(NAME, T, LOAD)                                                         \
    DEFINE_FIXED(NAME, T, LOAD, 16)                                                       \
    DEFINE_FIXED(NAME, T, LOAD, 32)                                                       \
    DEFINE_FIXED(NAME, T, LOAD, 64)                                                       \
    DEFINE_FIXED(NAME, T, LOAD, 128)                                                      \
    WIDE_CLONES static int NAME##_any(SUM_ARGS(T)) { SUM_BAGS(T, LOAD, width, 0) }        \
    static int NAME##_range(SUM_ARGS(T)) {                                                \
        const int64_t b0 = bag_begin, b1 = bag_end;                                       \
        switch (width) {                                                                  \
        case 16: return NAME##_16(SUM_CALL);                                              \
        case 32: return NAME##_32(SUM_CALL);                                              \
        case 64: return NAME##_64(SUM_CALL);                                              \
        case 128: return NAME##_128(SUM_CALL);                                            \
        default: return NAME##_any(SUM_CALL);                                             \
        }                                                                                 \
    }                                                                                     \
    int32_t NAME(const T *restrict table, int64_t n_rows, int64_t width,                  \
                 const void *indices, int32_t index_bytes, const int64_t *offsets,        \
                 const float *weights, int64_t n_bags, int64_t chunk, int64_t *state,     \
                 int64_t spin, int64_t out_stride, float *restrict out) {                 \
        for (;;) {                                                                        \
            const int64_t b0 = __atomic_fetch_add(&state[NEXT], chunk, __ATOMIC_RELAXED); \
            if (b0 >= n_bags)                                                             \
                break;                                                                    \
            const int64_t b1 = chunk < n_bags - b0 ? b0 + chunk : n_bags;                 \
            if (NAME##_range(SUM_CALL)) {                                                 \
                __atomic_store_n(&state[FAULT], 1, __ATOMIC_RELAXED);                     \
                __atomic_store_n(&state[NEXT], n_bags, __ATOMIC_RELAXED);                 \
                return 1;                                                                 \
            }                                                                             \
            __atomic_fetch_add(&state[DONE], b1 - b0, __ATOMIC_RELEASE);                  \
        }                                                                                 \
        for (int64_t i = 0; i < spin && __atomic_load_n(&state[DONE], __ATOMIC_ACQUIRE) <   \
                                            n_bags && !__atomic_load_n(&state[FAULT],     \
                                                                       __ATOMIC_RELAXED); \
             i++)                                                                         \
            cpu_relax();                                                                  \
        if (__atomic_load_n(&state[FAULT], __ATOMIC_RELAXED))                             \
            return 1;                                                                     \
        return __atomic_load_n(&state[DONE], __ATOMIC_ACQUIRE) < n_bags ? 2 : 0;          \
    }

DEFINE_SUM(caffe2lite_sparse_lengths_sum_f32, float, LOAD_F32)
DEFINE_SUM(caffe2lite_sparse_lengths_sum_f16, uint16_t, LOAD_F16)
