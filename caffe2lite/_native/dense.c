/* Memory-bound kernels of the training step outside the sparse family, one pass each:
 * FCGradient's bias gradient (column sums), ReluGradient, Gather along axis 0, FC's
 * bias, and the outer product FC / FCGradient make over an inner dimension of 1.
 *
 * Why C: on the main job's (8192, 32) float32 gradients NumPy's column sum walks the
 * rows one inner-loop call at a time, and its ReluGradient needs three passes (compare,
 * mask, select); each of these is one streaming pass here.  Gather's random reads from
 * a training set of millions of rows are cache misses that NumPy's take waits for one
 * by one; here the rows AHEAD positions on are prefetched.
 *
 * Same bits as NumPy:
 *   column_sums: out[j] = ((0 + x[0][j]) + x[1][j]) + ... -- NumPy's order for
 *     x.sum(axis=0) on a C-contiguous matrix with more than one column (each column
 *     accumulated row after row from +0.0).  Vectorised across columns only, so every
 *     column keeps its sequential order.
 *   relu_gradient: out[i] = y[i] > 0 ? dy[i] : +0.0 -- np.where(y > 0, dy, 0), NaN in
 *     y counting as not positive.
 *   gather_rows: a copy of the named rows (bytes).
 *   add_row: y[i][j] = y[i][j] + b[j] -- NumPy's y += b, one IEEE add each.
 *   outer: out[i][j] = a[i] * b[j] -- NumPy's a * b of an (m, 1) and a (1, n) matrix,
 *     one IEEE multiply each.  NumPy's broadcast loops walk these (8192, 32) shapes
 *     one short row at a time: 106 us for the outer product and 53 us for the bias
 *     against about 25 us for one streaming pass here.
 * Built with -ffp-contract=off; the loops are VECTOR_CLONES (rows.h).
 */
#include <stdint.h>
#include <string.h>

#include "rows.h" /* index_at, VECTOR_CLONES */

#define AHEAD 32 /* gathered rows prefetched ahead of the one being copied (16 -> 32: the main
                  * job's batch net 340 -> 305 us at batch 8192; each copy is a few ns) */

int32_t caffe2lite_dense_abi(void) { return 3; }

VECTOR_CLONES void caffe2lite_column_sums_f32(const float *x, int64_t rows, int64_t cols,
                                              float *out) {
    for (int64_t j = 0; j < cols; j++) out[j] = 0.f;
    for (int64_t i = 0; i < rows; i++) {
        const float *row = x + i * cols;
        for (int64_t j = 0; j < cols; j++) out[j] += row[j];
    }
}

VECTOR_CLONES void caffe2lite_relu_gradient_f32(const float *y, const float *dy, int64_t n,
                                                float *out) {
    for (int64_t i = 0; i < n; i++) out[i] = y[i] > 0.f ? dy[i] : 0.f;
}

VECTOR_CLONES void caffe2lite_add_row_f32(float *y, int64_t rows, int64_t cols,
                                          const float *b) {
    for (int64_t i = 0; i < rows; i++) {
        float *row = y + i * cols;
        for (int64_t j = 0; j < cols; j++) row[j] = row[j] + b[j];
    }
}

VECTOR_CLONES void caffe2lite_outer_f32(const float *a, int64_t m, const float *b, int64_t n,
                                        float *out) {
    for (int64_t i = 0; i < m; i++) {
        const float ai = a[i];
        float *row = out + i * n;
        for (int64_t j = 0; j < n; j++) row[j] = ai * b[j];
    }
}

/* out[i] = data[idx[i]] for rows of row_bytes bytes, negative indices counting from the
 * end when `wrap`.  Returns -1, or the position of the first index outside the rows
 * (then `out` is partly written: the caller drops it). */
int64_t caffe2lite_gather_rows(const char *data, int64_t n_rows, int64_t row_bytes,
                               const void *indices, int32_t index_bytes, int64_t n,
                               int32_t wrap, char *out) {
    for (int64_t i = 0; i < n; i++) {
        if (i + AHEAD < n) {
            int64_t ahead = index_at(indices, index_bytes, i + AHEAD);
            if (wrap && ahead < 0) ahead += n_rows;
            if (ahead >= 0 && ahead < n_rows) __builtin_prefetch(data + ahead * row_bytes, 0, 3);
        }
        int64_t r = index_at(indices, index_bytes, i);
        if (wrap && r < 0) r += n_rows;
        if (r < 0 || r >= n_rows) return i;
        const char *row = data + r * row_bytes;
        if (row_bytes == 8)
            memcpy(out + i * 8, row, 8);
        else if (row_bytes == 4)
            memcpy(out + i * 4, row, 4);
        else
            memcpy(out + i * row_bytes, row, (size_t)row_bytes);
    }
    return -1;
}
