"""HeatmapMaxKeypoint: keypoint positions from Mask R-CNN's keypoint heatmaps.

After ``caffe2/operators/heatmap_max_keypoint_op.cc``.  For each RoI ``n`` (box
``bboxes[n, :4]`` = x0, y0, x1, y1) and keypoint ``k`` of the ``S x S``
heatmap: the first maximum ``(maxY, maxX)``; a quadratic (second-order Taylor)
fit of the 3x3 neighbourhood (mirrored at the border) refines it by ``delta =
A^-1 b`` (b = -gradient, A = Hessian, by central differences; no step when
``|det A| < 1e-4``; a step longer than 1.5 cells in either axis scaled back to
1.5), instead of Detectron's bicubic upscaling.  Output ``(N, 4, K)``: x
``x0 + (0.5 + maxX + dx) * max(x1 - x0, 1) / S`` (double precision, as
Caffe2's ``0.5`` made it), y likewise, the fitted score
``f - b.delta + delta.A.delta / 2``, and with ``should_output_softmax`` the
heatmap's softmax at the maximum (else 0).  All RoIs and keypoints at once.

The softmax subtracts the maximum first (Caffe2 exponentiated raw scores and
gave NaN past exp's float range; the values are otherwise the same).  A NaN
heatmap is an error (Caffe2 left its maximum undefined).
"""

import numpy as np

from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, TensorSpec, register_kernel,
                                register_schema)

F32 = np.float32
MAX_DELTA = F32(1.5)


def _output_spec(ctx, heatmaps, bboxes):
    if heatmaps is None or len(heatmaps.shape) != 4:
        return (None,)
    return (TensorSpec((heatmaps.shape[0], 4, heatmaps.shape[1]), np.float32),)


register_schema(OpSchema(
    "HeatmapMaxKeypoint", num_inputs=2, num_outputs=1, cpu_fallback=True,
    args=[Arg("should_output_softmax", "bool", False, "fill row 3 with the heatmap's softmax "
                                                      "at the maximum (else 0)")],
    infer_shapes=_output_spec,
    inputs=[("heatmaps", "(N, K, S, S) float32 keypoint heatmaps, S >= 2"),
            ("bboxes", "(N, >= 4) float32 boxes [x0, y0, x1, y1, ...] of the heatmaps")],
    outputs=[("keypoints", "(N, 4, K) float32: x, y, fitted score, softmax probability")],
    doc="Keypoint positions at the heatmaps' maxima, refined by a quadratic fit of the 3x3 "
        "neighbourhood and mapped into each box.",
    gradient=SHOULD_NOT_DO_GRADIENT))


def _checked(ctx, heatmaps, bboxes):
    if getattr(heatmaps, "dtype", None) != F32 or heatmaps.ndim != 4:
        ctx.fail(f"{ctx.input_label(0)} must be a 4-D float32 tensor (N, K, S, S), got "
                 f"{getattr(heatmaps, 'dtype', type(heatmaps).__name__)} "
                 f"{tuple(getattr(heatmaps, 'shape', ()))}")
    n, _, s, s2 = heatmaps.shape
    if s < 2 or s != s2:
        ctx.fail(f"{ctx.input_label(0)} must hold square heatmaps of at least 2 x 2, got "
                 f"{s} x {s2}")
    if getattr(bboxes, "dtype", None) != F32 or bboxes.ndim != 2 or bboxes.shape[0] != n \
            or bboxes.shape[1] < 4:
        ctx.fail(f"{ctx.input_label(1)} must be float32 ({n}, >= 4) boxes, got "
                 f"{getattr(bboxes, 'dtype', type(bboxes).__name__)} "
                 f"{tuple(getattr(bboxes, 'shape', ()))}")
    if np.isnan(heatmaps).any():
        ctx.fail(f"{ctx.input_label(0)} holds NaN, which has no maximum")


def _neighbourhood(maps, max_y, max_x, size):
    """(R, 3, 3) values around each maximum, mirrored at the border (Caffe2's rule)."""
    step = np.arange(-1, 2)

    def mirrored(centre):
        pos = centre[:, None] + step[None, :]
        return centre[:, None] + step - 2 * (pos >= size) + 2 * (pos < 0)

    ys, xs = mirrored(max_y), mirrored(max_x)
    flat = ys[:, :, None] * size + xs[:, None, :]
    return np.take_along_axis(maps, flat.reshape(len(maps), 9), axis=1).reshape(-1, 3, 3)


@register_kernel("HeatmapMaxKeypoint")
def heatmap_max_keypoint(ctx, heatmaps, bboxes):
    _checked(ctx, heatmaps, bboxes)
    n, k, size, _ = heatmaps.shape
    maps = heatmaps.reshape(n * k, size * size)
    if maps.shape[0] == 0:
        return (np.zeros((n, 4, k), F32),)
    max_index = maps.argmax(axis=1)  # the first maximum, as Caffe2's scan found it
    max_score = maps[np.arange(len(maps)), max_index]
    max_y, max_x = max_index // size, max_index % size
    f = _neighbourhood(maps, max_y, max_x, size)
    b = np.stack([-(f[:, 1, 2] - f[:, 1, 0]) / F32(2), -(f[:, 2, 1] - f[:, 0, 1]) / F32(2)], 1)
    a00 = f[:, 1, 0] - F32(2) * f[:, 1, 1] + f[:, 1, 2]
    a01 = (f[:, 2, 2] - f[:, 2, 0] - f[:, 0, 2] + f[:, 0, 0]) / F32(4)
    a11 = f[:, 0, 1] - F32(2) * f[:, 1, 1] + f[:, 2, 1]
    det = a00 * a11 - a01 * a01
    step = np.abs(det) >= F32(1e-4)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        safe = np.where(step, det, F32(1))
        delta = np.stack([(a11 * b[:, 0] - a01 * b[:, 1]) / safe,
                          (a00 * b[:, 1] - a01 * b[:, 0]) / safe], 1)
        longest = np.abs(delta).max(axis=1)
        delta = np.where((longest > MAX_DELTA)[:, None],
                         delta / longest[:, None] * MAX_DELTA, delta)
        delta = np.where(step[:, None], delta, F32(0))
        quad = delta[:, 0] * (a00 * delta[:, 0] + a01 * delta[:, 1]) \
            + delta[:, 1] * (a01 * delta[:, 0] + a11 * delta[:, 1])
        fitted = np.where(step, f[:, 1, 1] - (b * delta).sum(axis=1) + F32(0.5) * quad,
                          max_score)
    boxes = np.repeat(bboxes[:, :4], k, axis=0)  # (n * k, 4): each RoI's box per keypoint
    x_len = np.maximum(boxes[:, 2] - boxes[:, 0], F32(1)).astype(np.float64)
    y_len = np.maximum(boxes[:, 3] - boxes[:, 1], F32(1)).astype(np.float64)
    out = np.zeros((n * k, 4), F32)
    out[:, 0] = boxes[:, 0] + (0.5 + max_x + delta[:, 0].astype(np.float64)) * x_len / size
    out[:, 1] = boxes[:, 1] + (0.5 + max_y + delta[:, 1].astype(np.float64)) * y_len / size
    out[:, 2] = fitted
    if ctx.args["should_output_softmax"]:
        with np.errstate(invalid="ignore"):  # an infinite heatmap: NaN, as Caffe2's exp gave
            shifted = np.exp(maps - max_score[:, None])
            out[:, 3] = 1 / shifted.sum(axis=1)  # exp(max - max) / sum
    return (np.ascontiguousarray(out.reshape(n, k, 4).transpose(0, 2, 1)),)
