/* im2col for 2-D convolutions over NCHW float32 images: the copy before the GEMM.
 *
 * Why C: NumPy builds the im2col matrix by copying a 6-D strided window view
 * (ascontiguousarray of X's windows), whose innermost loop runs over the kernel
 * width -- 3 or 7 elements per call -- so the copy of a ResNet layer took as long
 * as its GEMM (BENCHMARKS.md, section perf).  Here each row of the matrix (one
 * channel, one kernel offset) is written output row by output row: a memcpy for
 * stride 1, a strided loop otherwise, zeros where the window leaves the image.
 * It is a copy: results are the same bits whatever the path.
 *
 * The rows [r0, r1) of the (C * KH * KW)-row matrix are written, r counting
 * (channel, kernel row) pairs, so threads (operators/_parallel.py; ctypes
 * releases the GIL) fill disjoint rows; of each row, the columns of the output
 * rows [oh0, oh1) (all of them: 0 and OH), so threads can also make the matrices
 * of different bands of the output.  `col` row r * KW + j starts at
 * col + (r * KW + j) * col_stride + col_offset: the matrix of one image, or its
 * column block in a matrix shared by a whole batch (images side by side).
 */
#include <stdint.h>
#include <string.h>

int32_t caffe2lite_conv_abi(void) { return 2; }

void caffe2lite_im2col_f32(const float *restrict x, int64_t H, int64_t W, int64_t KH,
                           int64_t KW, int64_t sh, int64_t sw, int64_t dh, int64_t dw,
                           int64_t pad_t, int64_t pad_l, int64_t oh0, int64_t oh1, int64_t OW,
                           int64_t r0, int64_t r1, float *restrict col, int64_t col_stride,
                           int64_t col_offset) {
    for (int64_t r = r0; r < r1; r++) {
        const int64_t c = r / KH, i = r % KH;
        const float *plane = x + c * H * W;
        for (int64_t j = 0; j < KW; j++) {
            float *out = col + (r * KW + j) * col_stride + col_offset;
            /* output columns whose input column lies inside the image: [ow0, ow1) */
            const int64_t shift = j * dw - pad_l;
            int64_t ow0 = shift >= 0 ? 0 : (-shift + sw - 1) / sw;
            int64_t ow1 = W - shift <= 0 ? 0 : (W - shift + sw - 1) / sw;
            if (ow1 > OW) ow1 = OW;
            if (ow0 > ow1) ow0 = ow1;
            for (int64_t oh = oh0; oh < oh1; oh++, out += OW) {
                const int64_t h = oh * sh - pad_t + i * dh;
                if (h < 0 || h >= H) {
                    memset(out, 0, (size_t)OW * sizeof(float));
                    continue;
                }
                const float *row = plane + h * W + shift;
                if (ow0) memset(out, 0, (size_t)ow0 * sizeof(float));
                if (sw == 1) {
                    memcpy(out + ow0, row + ow0, (size_t)(ow1 - ow0) * sizeof(float));
                } else {
                    for (int64_t ow = ow0; ow < ow1; ow++) out[ow] = row[ow * sw];
                }
                if (ow1 < OW) memset(out + ow1, 0, (size_t)(OW - ow1) * sizeof(float));
            }
        }
    }
}
