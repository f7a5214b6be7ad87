/* Detectron's two hot loops in plain C (loaded with ctypes by operators/_native_detection.py):
 *
 *   c2l_roi_align   RoIAlign's forward pass on a channels-last feature map, as Caffe2's
 *                   roi_align_op.cc computes it (bilinear parameters per sample, the four
 *                   corners weighted and summed over a bin's samples, times 1 / samples);
 *   c2l_nms         greedy non-maximum suppression over score-sorted upright boxes, as
 *                   Caffe2's nms_cpu_upright decides (a box survives while its IoU with every
 *                   kept box is <= the threshold), with Caffe2's float32 formulas.
 *
 * The callers check every input first (shapes, dtypes, batch indices, finite coordinates);
 * these functions trust them.  operators/roi_align.py and operators/_boxes.py hold the NumPy
 * engines, which give the same results (RoIAlign to float32 rounding, NMS exactly).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

int32_t c2l_detection_abi(void) { return 4; }

static void bilinear(float y, float x, int64_t H, int64_t W, int64_t* p, float* w) {
  if (y < -1.0f || y > (float)H || x < -1.0f || x > (float)W) {
    p[0] = p[1] = p[2] = p[3] = 0;
    w[0] = w[1] = w[2] = w[3] = 0.0f;
    return;
  }
  y = fminf(fmaxf(y, 0.0f), (float)(H - 1));
  x = fminf(fmaxf(x, 0.0f), (float)(W - 1));
  const int64_t yl = (int64_t)floorf(y), xl = (int64_t)floorf(x);
  const int64_t yh = yl + 1 < H - 1 ? yl + 1 : H - 1;
  const int64_t xh = xl + 1 < W - 1 ? xl + 1 : W - 1;
  const float py = y - (float)yl, px = x - (float)xl;
  const float qy = 1.0f - py, qx = 1.0f - px;
  p[0] = yl * W + xl; p[1] = yl * W + xh; p[2] = yh * W + xl; p[3] = yh * W + xh;
  w[0] = qy * qx; w[1] = qy * px; w[2] = py * qx; w[3] = py * px;
}

/* X: (N, H, W, C) float32; frames: per RoI [batch, y1, x1, roi_h, roi_w, grid_h, grid_w] as
 * doubles (already scaled, offset and widened by the caller); Y: (R, PH, PW, C), or with
 * `scratch` (PH * PW * C floats) (R, C, PH, PW): each RoI is pooled channels-last into the
 * scratch and transposed into Y while it is still in cache. */
void c2l_roi_align(const float* X, int64_t H, int64_t W, int64_t C,
                   const double* frames, int64_t R, int64_t PH, int64_t PW, float* Y,
                   float* scratch) {
  for (int64_t r = 0; r < R; ++r) {
    const double* f = frames + 7 * r;
    const float* img = X + (int64_t)f[0] * H * W * C;
    const float y1 = (float)f[1], x1 = (float)f[2];
    const float roi_h = (float)f[3], roi_w = (float)f[4];
    const int64_t gh = (int64_t)f[5], gw = (int64_t)f[6];
    const float bin_h = roi_h / (float)PH, bin_w = roi_w / (float)PW;
    const float ch = bin_h / (float)gh, cw = bin_w / (float)gw;
    const float scale = 1.0f / (float)(gh * gw);
    float* out = scratch ? scratch : Y + r * PH * PW * C;
    for (int64_t ph = 0; ph < PH; ++ph) {
      for (int64_t pw = 0; pw < PW; ++pw) {
        float* y = out + (ph * PW + pw) * C;
        memset(y, 0, sizeof(float) * (size_t)C);
        for (int64_t iy = 0; iy < gh; ++iy) {
          const float yy = y1 + (float)ph * bin_h + ((float)iy + 0.5f) * ch;
          for (int64_t ix = 0; ix < gw; ++ix) {
            const float xx = x1 + (float)pw * bin_w + ((float)ix + 0.5f) * cw;
            int64_t p[4];
            float w[4];
            bilinear(yy, xx, H, W, p, w);
            const float w1 = w[0], w2 = w[1], w3 = w[2], w4 = w[3];
            const float* a = img + p[0] * C;
            const float* b = img + p[1] * C;
            const float* c = img + p[2] * C;
            const float* d = img + p[3] * C;
            for (int64_t k = 0; k < C; ++k) {
              y[k] += w1 * a[k] + w2 * b[k] + w3 * c[k] + w4 * d[k];
            }
          }
        }
        if (gh * gw == 0) {
          for (int64_t k = 0; k < C; ++k) y[k] = NAN;  /* Caffe2's 0 * (1 / 0) */
        } else {
          for (int64_t k = 0; k < C; ++k) y[k] *= scale;
        }
      }
    }
    if (scratch) {
      float* dst = Y + r * C * PH * PW;
      const int64_t bins = PH * PW;
      for (int64_t b = 0; b < bins; ++b) {
        for (int64_t k = 0; k < C; ++k) dst[k * bins + b] = scratch[b * C + k];
      }
    }
  }
}

/* boxes: (M, 4) float32 already in score order; keep: M int64 slots; scratch: 5 * M float32
 * (each kept box's corners and area, side by side).  Returns how many were kept (their row
 * numbers in keep[0..n)).  Each candidate is compared with the boxes kept so far, stopping
 * at the first that suppresses it: the same decisions as Caffe2's pass over the remaining
 * boxes after each keep, with far fewer IoUs. */
int64_t c2l_nms(const float* boxes, int64_t M, float thresh, int64_t top_n, int32_t plus_one,
                float* scratch, int64_t* keep) {
  const float one = plus_one ? 1.0f : 0.0f;
  /* Boxes that do not overlap have IoU 0 / (area_i + area_j): 0 (kept when 0 <= thresh)
   * while both areas are positive, NaN (suppressed) when their sum is 0. */
  const int32_t apart_survives = 0.0f <= thresh;
  int64_t n = 0;
  for (int64_t j = 0; j < M; ++j) {
    if (top_n >= 0 && n >= top_n) break;
    const float* b = boxes + 4 * j;
    const float x1 = b[0], y1 = b[1], x2 = b[2], y2 = b[3];
    const float area = (x2 - x1 + one) * (y2 - y1 + one);
    int32_t survives = 1;
    for (int64_t t = 0; t < n; ++t) {
      const float* k = scratch + 5 * t;
      const float w = fminf(x2, k[2]) - fmaxf(x1, k[0]) + one;
      const float h = fminf(y2, k[3]) - fmaxf(y1, k[1]) + one;
      if (w <= 0.0f || h <= 0.0f) {
        if (apart_survives && k[4] + area != 0.0f) continue;
        survives = 0;
        break;
      }
      const float inter = w * h;
      const float ovr = inter / (k[4] + area - inter);
      if (!(ovr <= thresh)) {
        survives = 0;
        break;
      }
    }
    if (survives) {
      float* k = scratch + 5 * n;
      k[0] = x1; k[1] = y1; k[2] = x2; k[3] = y2; k[4] = area;
      keep[n++] = j;
    }
  }
  return n;
}
