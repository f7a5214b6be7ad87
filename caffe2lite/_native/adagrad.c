/* Adagrad, SparseAdagrad and RowWiseSparseAdagrad on CPU (the NATIVE engine), the
 * sparse ones optionally fused with SparseNormalize on the same rows.
 *
 * Why C: Caffe2 applies one update per index occurrence, in index order, so a
 * row named k times is updated k times, each from the previous result.  NumPy
 * can only reproduce that with one vectorised round per repetition (Zipf
 * batches repeat ids a lot: half of the main job's step went there); here it is
 * one loop over the occurrences, O(occurrences), each row read, updated and
 * written while it is in cache, the rows AHEAD positions on prefetched.
 *
 * The arithmetic is the NumPy engines' (operators/adagrad.py and sparse_adagrad.py),
 * operation for operation in float32, so both engines give the same bits:
 *   SparseAdagrad:        g = grad (+ param * wd); h = moment + g * g;
 *                         param = param + (g * lr) / (sqrt(h) + eps)
 *   RowWiseSparseAdagrad: g = grad (+ wd * param); h = moment[r] + sum(g * g) / block
 *                         (NumPy's pairwise order, see pairwise_sum);
 *                         param = param + g * (lr / (sqrt(h) + eps))
 *                         (block 1: param + (lr * g) / (sqrt(h) + eps))
 * Build without contraction (-ffp-contract=off): a fused multiply-add would
 * round differently from NumPy's separate multiply and add.
 *
 * Fused max-norm: with `is_last`, the row of every position that is its row's
 * last occurrence is renormalised right after that update, with
 * SparseNormalize's own row routine (rows.h).  Rows are independent, so this
 * equals running SparseAdagrad over all indices and then SparseNormalize.
 *
 * Single-threaded, in index order: the same bits on every run.  Splitting the
 * rows between threads (each taking the rows r % parts == part, which keeps
 * every row's order) was measured slower on 2 cores at 512 to 32768
 * occurrences: the pass is bound by memory latency, which a second thread
 * sharing the caches does not hide.  Indices are checked
 * (caffe2lite_sparse_adagrad_prepare) before anything is written.
 *
 * The gradient rows are `grad_stride` floats apart: a column block of a wider matrix
 * is read where it lies (the main job's bags' gradients are halves of one
 * (batch, 64) matrix; copying each out cost 90-130 us of a 3.5 ms step at 8192).
 */
#include <math.h>
#include <stdint.h>

#include "rows.h" /* index_at, prefetch_row, DEFINE_NORMALIZE_ROW */

#define AHEAD 8 /* positions prefetched ahead of the one being updated */

/* The update loops are VECTOR_CLONES (rows.h): 20% faster with AVX2 on the main job's
 * 32-wide rows, the same bits. */

int32_t caffe2lite_adagrad_abi(void) { return 3; }

/* Dense Adagrad into fresh outputs (the NumPy engine's expressions, element by element):
 *   g = grad (+ wd * param when use_wd); h = decay * moment + g * g;
 *   out_param = param + (lr * g) / (sqrt(h) + eps); out_moment = h.
 * One pass instead of NumPy's ten calls, which is what the op costs on the small dense
 * parameters of a recommendation model.  The outputs may be the inputs (in place). */
VECTOR_CLONES void caffe2lite_adagrad_f32(const float *param, const float *moment,
                                          const float *grad, int64_t n, float lr, float eps,
                                          float decay, float wd, int32_t use_wd,
                                          float *out_param, float *out_moment) {
    for (int64_t j = 0; j < n; j++) {
        float g = grad[j];
        if (use_wd) g = g + wd * param[j];
        float h = decay * moment[j] + g * g;
        out_moment[j] = h;
        out_param[j] = param[j] + (lr * g) / (sqrtf(h) + eps);
    }
}

static inline uint64_t slot_hash(int64_t r) { return (uint64_t)r * 0x9E3779B97F4A7C15ull; }

/* Check that every index is in [0, n_rows): returns -1, or the first bad position.
 * With `is_last` (one byte per position) also mark each row's last occurrence,
 * walking backwards through an open-addressing set of `capacity` (a power of two
 * >= 2n) int64 slots that the caller passes uninitialised. */
int64_t caffe2lite_sparse_adagrad_prepare(int64_t n_rows, const void *indices,
                                          int32_t index_bytes, int64_t n, int64_t *slots,
                                          int64_t capacity, uint8_t *is_last) {
    for (int64_t i = 0; i < n; i++) {
        int64_t r = index_at(indices, index_bytes, i);
        if (r < 0 || r >= n_rows) return i;
    }
    if (!is_last) return -1;
    for (int64_t s = 0; s < capacity; s++) slots[s] = -1;
    const uint64_t mask = (uint64_t)capacity - 1;
    for (int64_t i = n - 1; i >= 0; i--) {
        int64_t r = index_at(indices, index_bytes, i);
        uint64_t s = slot_hash(r) >> 20 & mask;
        while (slots[s] != -1 && slots[s] != r) s = (s + 1) & mask;
        is_last[i] = slots[s] == -1;
        slots[s] = r;
    }
    return -1;
}

/* NumPy's float32 pairwise summation (numpy/_core/src/umath/loops_utils.h.src), as
 * ``x.sum(axis=1)`` applies it to each contiguous row: exactly its order. */
static float pairwise_sum(const float *a, int64_t n) {
    if (n < 8) {
        float res = 0.f;
        for (int64_t i = 0; i < n; i++) res += a[i];
        return res;
    }
    if (n <= 128) {
        float r[8];
        for (int k = 0; k < 8; k++) r[k] = a[k];
        int64_t i = 8;
        for (; i < n - (n % 8); i += 8)
            for (int k = 0; k < 8; k++) r[k] += a[i + k];
        float res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) res += a[i];
        return res;
    }
    int64_t half = n / 2;
    half -= half % 8;
    return pairwise_sum(a, half) + pairwise_sum(a + half, n - half);
}

#define MAX_STACK_BLOCK 1024 /* row-wise: g*g of a row this wide is kept on the stack */

/* One SparseAdagrad update of a row of type T (float32 arithmetic). */
#define DEFINE_ADAGRAD_ROW(NAME, T)                                                          \
    static inline void NAME(T *p, float *h, const float *g, int64_t block, float lr,         \
                            float eps, float wd) {                                           \
        if (wd != 0.f) {                                                                     \
            for (int64_t j = 0; j < block; j++) {                                            \
                float pj = (float)p[j];                                                      \
                float gj = g[j] + pj * wd;                                                   \
                float hj = h[j] + gj * gj;                                                   \
                h[j] = hj;                                                                   \
                p[j] = (T)(pj + (gj * lr) / (sqrtf(hj) + eps));                              \
            }                                                                                \
        } else {                                                                             \
            for (int64_t j = 0; j < block; j++) {                                            \
                float hj = h[j] + g[j] * g[j];                                               \
                h[j] = hj;                                                                   \
                p[j] = (T)((float)p[j] + (g[j] * lr) / (sqrtf(hj) + eps));                   \
            }                                                                                \
        }                                                                                    \
    }

/* One RowWiseSparseAdagrad update of a row of type T: one moment per row. */
#define DEFINE_ROW_WISE_ROW(NAME, T)                                                         \
    static inline void NAME(T *p, float *h, const float *grad, int64_t block, float lr,      \
                            float eps, float wd) {                                           \
        float local[MAX_STACK_BLOCK];                                                        \
        const float *g = grad;                                                               \
        if (wd != 0.f) {                                                                     \
            for (int64_t j = 0; j < block; j++) local[j] = grad[j] + wd * (float)p[j];       \
            g = local;                                                                       \
        }                                                                                    \
        if (block == 1) {                                                                    \
            float hj = *h + g[0] * g[0];                                                     \
            *h = hj;                                                                         \
            p[0] = (T)((float)p[0] + (lr * g[0]) / (sqrtf(hj) + eps));                       \
            return;                                                                          \
        }                                                                                    \
        float square[MAX_STACK_BLOCK];                                                       \
        for (int64_t j = 0; j < block; j++) square[j] = g[j] * g[j];                         \
        float hj = *h + (0.f + pairwise_sum(square, block)) / (float)block;                  \
        *h = hj;                                                                             \
        float step = lr / (sqrtf(hj) + eps);                                                 \
        for (int64_t j = 0; j < block; j++) p[j] = (T)((float)p[j] + g[j] * step);           \
    }

/* The op for table type T: every position, in index order. */
#define DEFINE_SPARSE_ADAGRAD(NAME, T, ADAGRAD_ROW, ROW_WISE_ROW, NORMALIZE_ROW)             \
    VECTOR_CLONES void NAME(T *param, float *moment, int64_t block, const void *indices,     \
                            int32_t index_bytes, int64_t n, const float *grad,               \
                            int64_t grad_stride, float lr,                                   \
                            float eps, float wd, int32_t row_wise, const uint8_t *is_last,   \
                            float norm, int32_t use_max_norm) {                              \
        const int64_t h_block = row_wise ? 1 : block;                                        \
        for (int64_t i = 0; i < n; i++) {                                                    \
            if (i + AHEAD < n) {                                                             \
                int64_t ahead = index_at(indices, index_bytes, i + AHEAD);                   \
                prefetch_row(param + ahead * block, block * (int64_t)sizeof(T));             \
                prefetch_row(moment + ahead * h_block, h_block * (int64_t)sizeof(float));    \
            }                                                                                \
            int64_t r = index_at(indices, index_bytes, i);                                   \
            T *p = param + r * block;                                                        \
            if (row_wise)                                                                    \
                ROW_WISE_ROW(p, moment + r, grad + i * grad_stride, block, lr, eps, wd);     \
            else                                                                             \
                ADAGRAD_ROW(p, moment + r * block, grad + i * grad_stride, block, lr, eps, wd);\
            if (is_last && is_last[i]) NORMALIZE_ROW(p, block, norm, use_max_norm);          \
        }                                                                                    \
    }

/* Widest row the row-wise kernel takes (its stack buffers); wider rows use NumPy. */
int64_t caffe2lite_sparse_adagrad_max_row_wise_block(void) { return MAX_STACK_BLOCK; }

DEFINE_ADAGRAD_ROW(adagrad_row_f32, float)
DEFINE_ROW_WISE_ROW(row_wise_row_f32, float)
DEFINE_NORMALIZE_ROW(normalize_row_f32, float)
DEFINE_SPARSE_ADAGRAD(caffe2lite_sparse_adagrad_f32, float, adagrad_row_f32, row_wise_row_f32,
                      normalize_row_f32)

/* float16 tables with float32 moments and gradients: float32 arithmetic, each row
 * rounded to float16 (to nearest even, the C cast) when it is written, so the next
 * occurrence reads what the table holds; renormalised with Float16SparseNormalize's
 * portable row routine (sparse_normalize.c checks its F16C one gives the same bits). */
#ifdef __FLT16_MAX__
DEFINE_ADAGRAD_ROW(adagrad_row_f16, _Float16)
DEFINE_ROW_WISE_ROW(row_wise_row_f16, _Float16)
DEFINE_NORMALIZE_ROW(normalize_row_f16, _Float16)
DEFINE_SPARSE_ADAGRAD(caffe2lite_sparse_adagrad_f16, _Float16, adagrad_row_f16,
                      row_wise_row_f16, normalize_row_f16)
int32_t caffe2lite_sparse_adagrad_has_f16(void) { return 1; }
#else
int32_t caffe2lite_sparse_adagrad_has_f16(void) { return 0; }
#endif
