/* SparseNormalize on CPU as one pass over the touched rows (the NATIVE engine).
 *
 * Why C: the NumPy kernel has to gather the touched rows into a buffer, compute
 * norms, scale and scatter them back, i.e. several passes with random row
 * access.  Here each distinct row is read, scaled and written while it is in
 * cache, and the next rows are prefetched, which roughly halves the time
 * (BENCHMARKS.md, section sparse-normalize).
 *
 * Plain C, no Python headers: loaded with ctypes by caffe2lite/_native.
 * The caller (operators/sparse_normalize.py) passes scratch: `seen`, one zeroed
 * byte per table row, and `rows`, room for min(n, n_rows) + 1 int64 (the
 * branch-free scan below stores one candidate past the last row).  Nothing in
 * `param` is written before every index has been checked.  Single-threaded
 * and with a fixed summation order, so results are the same bits on every run.
 *
 * Memory-check it with AddressSanitizer: build the library with
 * `gcc -g -std=c11 -fsanitize=address -shared -fPIC` in place of the built one and run
 * tests/operators/test_sparse_normalize.py under
 * `ASAN_OPTIONS=detect_leaks=0 LD_PRELOAD=$(gcc -print-file-name=libasan.so)`.
 */
#include <math.h>
#include <stdint.h>

#include "rows.h" /* index_at, prefetch_row, reduce_lanes, DEFINE_NORMALIZE_ROW */

#define AHEAD 8  /* rows prefetched ahead of the one being normalised */

/* Validate every index, mark rows in `seen` and list the distinct rows in
 * `rows`; returns their number, or -(position + 1) of the first bad index.
 * Each loop stores a candidate at rows[k] and advances k only when it counts,
 * so it writes at most rows[min(n, n_rows)]. */
static int64_t distinct_rows(int64_t n_rows, const void *indices, int32_t index_bytes,
                             int64_t n, uint8_t *seen, int64_t *rows) {
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t r = index_at(indices, index_bytes, i);
        if (r < 0 || r >= n_rows) return -(i + 1);
    }
    if (n < n_rows / 8) { /* few rows: keep first occurrences, no scan of the table */
        for (int64_t i = 0; i < n; i++) {
            int64_t r = index_at(indices, index_bytes, i);
            rows[k] = r;
            k += !seen[r];
            seen[r] = 1;
        }
        return k;
    }
    for (int64_t i = 0; i < n; i++) seen[index_at(indices, index_bytes, i)] = 1;
    for (int64_t r = 0; r < n_rows; r++) { /* ascending order: friendlier to memory */
        rows[k] = r;
        k += seen[r];
    }
    return k;
}

/* The whole op: distinct rows, then ROW on each, prefetching AHEAD rows ahead. */
#define DEFINE_SPARSE_NORMALIZE(NAME, T, ROW, ATTRS)                                     \
    ATTRS int64_t NAME(T *param, int64_t n_rows, int64_t block, const void *indices,     \
                       int32_t index_bytes, int64_t n, float norm, int32_t use_max_norm, \
                       uint8_t *seen, int64_t *rows) {                                   \
        int64_t k = distinct_rows(n_rows, indices, index_bytes, n, seen, rows);          \
        if (k < 0) return -k - 1;                                                        \
        for (int64_t i = 0; i < k; i++) {                                                \
            if (i + AHEAD < k)                                                           \
                prefetch_row(param + rows[i + AHEAD] * block, block * (int64_t)sizeof(T)); \
            ROW(param + rows[i] * block, block, norm, use_max_norm);                     \
        }                                                                                \
        return -1;                                                                       \
    }

/* Bumped whenever a signature above changes, so that a stale build is ignored. */
int32_t caffe2lite_sparse_normalize_abi(void) { return 1; }

DEFINE_NORMALIZE_ROW(normalize_row_f32, float)
DEFINE_SPARSE_NORMALIZE(caffe2lite_sparse_normalize_f32, float, normalize_row_f32, )

#ifdef __FLT16_MAX__ /* _Float16: gcc >= 12 / clang, on x86-64 and arm64 */
DEFINE_NORMALIZE_ROW(normalize_row_f16, _Float16)
/* Exported so that tests can check it against the F16C kernel on machines with F16C. */
DEFINE_SPARSE_NORMALIZE(caffe2lite_sparse_normalize_f16_generic, _Float16, normalize_row_f16, )

#if defined(__x86_64__)
/* Baseline x86-64 converts half <-> float in software, one element at a time, which
 * made the generic kernel slower than NumPy's.  With F16C, convert 8 at a time.  The
 * partial sums, the reduction and the rounding (to nearest even) are those of the
 * generic row, so both give the same bits. */
#include <immintrin.h>
#define F16C __attribute__((target("avx,f16c")))

F16C static inline void normalize_row_f16c(_Float16 *row, int64_t block, float norm,
                                           int32_t use_max_norm) {
    __m256 acc_lo = _mm256_setzero_ps(), acc_hi = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + LANES <= block; j += LANES) {
        __m256 lo = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + j)));
        __m256 hi = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + j + 8)));
        acc_lo = _mm256_add_ps(acc_lo, _mm256_mul_ps(lo, lo));
        acc_hi = _mm256_add_ps(acc_hi, _mm256_mul_ps(hi, hi));
    }
    float acc[LANES];
    _mm256_storeu_ps(acc, acc_lo);
    _mm256_storeu_ps(acc + 8, acc_hi);
    for (int l = 0; j < block; j++, l++) {
        float x = (float)row[j];
        acc[l] += x * x;
    }
    float row_norm = sqrtf(reduce_lanes(acc));
    if (use_max_norm && row_norm <= norm) return;
    float scale = norm / (row_norm + 1e-12f);
    __m256 s = _mm256_set1_ps(scale);
    for (j = 0; j + 8 <= block; j += 8) {
        __m256 x = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + j))), s);
        _mm_storeu_si128((__m128i *)(row + j), _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
    }
    for (; j < block; j++) row[j] = (_Float16)((float)row[j] * scale);
}

DEFINE_SPARSE_NORMALIZE(sparse_normalize_f16_f16c, _Float16, normalize_row_f16c, F16C static)

static int has_f16c(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c");
}
#else
static int has_f16c(void) { return 0; }
#endif

int64_t caffe2lite_sparse_normalize_f16(_Float16 *param, int64_t n_rows, int64_t block,
                                        const void *indices, int32_t index_bytes, int64_t n,
                                        float norm, int32_t use_max_norm, uint8_t *seen,
                                        int64_t *rows) {
#if defined(__x86_64__)
    if (has_f16c())
        return sparse_normalize_f16_f16c(param, n_rows, block, indices, index_bytes, n, norm,
                                         use_max_norm, seen, rows);
#endif
    return caffe2lite_sparse_normalize_f16_generic(param, n_rows, block, indices, index_bytes,
                                                   n, norm, use_max_norm, seen, rows);
}
int32_t caffe2lite_sparse_normalize_has_f16(void) { return 1; }

/* 1 when half <-> float conversions run in hardware, so that this kernel beats NumPy's
 * (the caller prefers it only then). */
int32_t caffe2lite_sparse_normalize_f16_fast(void) {
#if defined(__aarch64__)
    return 1;
#else
    return has_f16c() != 0;
#endif
}
#else
int32_t caffe2lite_sparse_normalize_has_f16(void) { return 0; }
int32_t caffe2lite_sparse_normalize_f16_fast(void) { return 0; }
#endif
