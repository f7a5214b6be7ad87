/* Two memory-bound dense kernels of the training step, in one pass each (NATIVE paths of
 * FCGradient's bias gradient and ReluGradient).
 *
 * Why C: on the main job's (8192, 32) float32 gradients NumPy's column sum walks the
 * rows one inner-loop call at a time, and its ReluGradient needs three passes (compare,
 * mask, select); each of these is one streaming pass here.
 *
 * Same bits as NumPy:
 *   column_sums: out[j] = ((0 + x[0][j]) + x[1][j]) + ... -- NumPy's order for
 *     x.sum(axis=0) on a C-contiguous matrix with more than one column (each column
 *     accumulated row after row from +0.0).  Vectorised across columns only, so every
 *     column keeps its sequential order.
 *   relu_gradient: out[i] = y[i] > 0 ? dy[i] : +0.0 -- np.where(y > 0, dy, 0), NaN in
 *     y counting as not positive.
 * Built with -ffp-contract=off; on x86-64 with GCC also as an AVX2 clone (see adagrad.c).
 */
#include <stdint.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define VECTOR_CLONES
#endif

int32_t caffe2lite_dense_abi(void) { return 1; }

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
