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

int32_t caffe2lite_conv_abi(void) { return 4; }

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

/* Winograd F(2x2, 3x3) for stride-1, undilated 3x3 convolutions of NCHW float32 images.
 *
 * Each 2x2 block of the output (a tile) comes from a 4x4 patch d of the input:
 * Y = A^T [ (G g G^T) .* (B^T d B) ] A, summed over channels -- 16 products per tile and
 * channel where the direct convolution takes 36, so the GEMMs in between (one per
 * position of the 4x4 transformed tile: U[p] (M x C) @ V[p] (C x tiles)) do 2.25x
 * fewer multiply-adds.  The transforms are additions only (and halvings in G), done
 * here; the roundings differ from the direct sum by a few units in the last place
 * (tests/operators/test_conv.py compares with the loops to 1e-4 of the largest value).
 *
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
 *   G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
 *   A^T = [1 1 1 0; 0 1 -1 -1]
 *
 * Each transform writes (or reads) 16 planes, one per position, `plane` floats apart:
 * the caller makes that a little more than a plane's size, not a multiple of 4 KiB, or
 * the 16 streams land in the same cache sets (a 64 x 784 plane is 49 x 4 KiB, and the
 * input transform of ResNet's 56 x 56 layers ran 15x slower).
 */

/* U[p][m][c] (p = 4i + j) = (G g G^T)[i][j] for the filters g = w[m][c] (3x3), m in
 * [m0, m1); U[p] holds M x C floats, planes `plane` floats apart. */
void caffe2lite_winograd_weights_f32(const float *restrict w, int64_t M, int64_t C, int64_t m0,
                                     int64_t m1, float *restrict u, int64_t plane) {
    for (int64_t m = m0; m < m1; m++) {
        for (int64_t c = 0; c < C; c++) {
            const float *g = w + (m * C + c) * 9;
            float t[4][3]; /* G g: 4 x 3 */
            for (int k = 0; k < 3; k++) {
                const float a = g[k], b = g[3 + k], d = g[6 + k];
                t[0][k] = a;
                t[1][k] = 0.5f * (a + b + d);
                t[2][k] = 0.5f * (a - b + d);
                t[3][k] = d;
            }
            float *out = u + m * C + c;
            for (int i = 0; i < 4; i++) { /* (G g) G^T: 4 x 4 */
                const float a = t[i][0], b = t[i][1], d = t[i][2];
                out[(4 * i + 0) * plane] = a;
                out[(4 * i + 1) * plane] = 0.5f * (a + b + d);
                out[(4 * i + 2) * plane] = 0.5f * (a - b + d);
                out[(4 * i + 3) * plane] = d;
            }
        }
    }
}

/* V[p][c][t0 + ty * TW + tx] = (B^T d B)[p] for the channels c in [c0, c1) of one image x
 * (C x H x W), d the 4x4 patch at (2 ty - pad_t, 2 tx - pad_l), zeros outside the image.
 * V[p] holds C x `tiles` floats, planes `plane` floats apart. */
void caffe2lite_winograd_input_f32(const float *restrict x, int64_t C, int64_t H, int64_t W,
                                   int64_t pad_t, int64_t pad_l, int64_t TH, int64_t TW,
                                   int64_t c0, int64_t c1, float *restrict v, int64_t tiles,
                                   int64_t t0, int64_t plane) {
    for (int64_t c = c0; c < c1; c++) {
        const float *img = x + c * H * W;
        float *out = v + c * tiles + t0;
        for (int64_t ty = 0; ty < TH; ty++) {
            const int64_t h0 = 2 * ty - pad_t;
            for (int64_t tx = 0; tx < TW; tx++, out++) {
                const int64_t w0 = 2 * tx - pad_l;
                float d[4][4];
                if (h0 >= 0 && h0 + 4 <= H && w0 >= 0 && w0 + 4 <= W) {
                    for (int i = 0; i < 4; i++)
                        for (int j = 0; j < 4; j++) d[i][j] = img[(h0 + i) * W + w0 + j];
                } else {
                    for (int i = 0; i < 4; i++)
                        for (int j = 0; j < 4; j++) {
                            const int64_t h = h0 + i, ww = w0 + j;
                            d[i][j] = (h >= 0 && h < H && ww >= 0 && ww < W) ? img[h * W + ww]
                                                                              : 0.0f;
                        }
                }
                float r[4][4]; /* B^T d */
                for (int j = 0; j < 4; j++) {
                    r[0][j] = d[0][j] - d[2][j];
                    r[1][j] = d[1][j] + d[2][j];
                    r[2][j] = d[2][j] - d[1][j];
                    r[3][j] = d[1][j] - d[3][j];
                }
                for (int i = 0; i < 4; i++) { /* (B^T d) B */
                    out[(4 * i + 0) * plane] = r[i][0] - r[i][2];
                    out[(4 * i + 1) * plane] = r[i][1] + r[i][2];
                    out[(4 * i + 2) * plane] = r[i][2] - r[i][1];
                    out[(4 * i + 3) * plane] = r[i][1] - r[i][3];
                }
            }
        }
    }
}

/* Y[m] (OH x OW) of one image, for m in [m0, m1), from P[p][m][t0 + tile] (P[p] holds
 * M x `tiles` floats, planes `plane` floats apart): each tile's 2x2 block A^T P A, cut at
 * the image's edge. */
void caffe2lite_winograd_output_f32(const float *restrict p, int64_t M, int64_t tiles,
                                    int64_t t0, int64_t TH, int64_t TW, int64_t OH, int64_t OW,
                                    int64_t m0, int64_t m1, float *restrict y, int64_t plane) {
    for (int64_t m = m0; m < m1; m++) {
        const float *in = p + m * tiles + t0;
        float *out = y + m * OH * OW;
        for (int64_t ty = 0; ty < TH; ty++) {
            for (int64_t tx = 0; tx < TW; tx++, in++) {
                float s[2][4]; /* A^T P */
                for (int j = 0; j < 4; j++) {
                    const float a = in[j * plane], b = in[(4 + j) * plane],
                                c = in[(8 + j) * plane], d = in[(12 + j) * plane];
                    s[0][j] = a + b + c;
                    s[1][j] = b - c - d;
                }
                const int64_t h = 2 * ty, w = 2 * tx;
                for (int i = 0; i < 2 && h + i < OH; i++) {
                    float *row = out + (h + i) * OW + w;
                    row[0] = s[i][0] + s[i][1] + s[i][2];
                    if (w + 1 < OW) row[1] = s[i][1] - s[i][2] - s[i][3];
                }
            }
        }
    }
}
