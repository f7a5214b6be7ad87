"""RMACRegions (caffe2/operators/rmac_regions_op.*): the fixed grid of R-MAC regions
(arXiv 1511.05879) over an (N, C, H, W) feature map, as RoIs for RoIPool.

At scale l = 1 .. ``scales`` the regions are squares of side 2 * min(H, W) // (l + 1)
(none once that is 0), l + Wd across and l + Hd down, spaced evenly and pushed back
inside the map at the borders; along the longer side Wd or Hd extra regions are
added, the number (1 to 6) whose spacing makes consecutive regions overlap closest
to ``overlap``.  Output: (N * regions, 5) float32 rows (batch index, x1, y1, x2, y2),
the same regions for every batch item; (0, 5) for an empty input.  Float arithmetic
as Caffe2's (float32, truncation to int).  SHOULD_NOT_DO_GRADIENT.
"""

import numpy as np

from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, register_kernel,
                                register_schema)

F32 = np.float32

register_schema(OpSchema(
    "RMACRegions", num_inputs=1, num_outputs=1,
    inputs=[("X", "The input 4D tensor of shape NCHW.")],
    outputs=[("RMAC_REGIONS", "The output RMAC regions for all items in the batch. Tensor of "
                              "shape (N x 5) following the ROIPoolOp format - each row is of "
                              "the format (batch_index x1 y1 x2 y2).")],
    args=[Arg("scales", "int", 3, "Number of scales to sample regions at."),
          Arg("overlap", "float", 0.4, "Overlap between consecutive regions.")],
    doc="Computes a fixed-grid of RMAC region coordinates at various levels as described in "
        "https://arxiv.org/abs/1511.05879.",
    gradient=SHOULD_NOT_DO_GRADIENT))


def regions(height, width, scales, overlap):
    """(regions, 4) float32 (x1, y1, x2, y2) for one image."""
    short = min(height, width)
    step = 0
    if width != height:
        steps = np.arange(1, 7)
        b = (np.float64(max(height, width) - short) / steps).astype(F32)
        val = np.abs((F32(short * short) - F32(short) * b) / F32(short * short) - F32(overlap))
        step = int(steps[np.argmin(val)])  # the first of equal minima, as Caffe2's strict <
    wd, hd = (step if width > height else 0), (step if height > width else 0)
    boxes = []
    for level in range(1, scales + 1):  # a few scales; each one's grid is vectorised
        size = 2 * short // (level + 1)
        if size == 0:
            break
        bw = F32((width - size) / (level + wd - 1)) if level + wd - 1 > 0 else F32(0)
        bh = F32((height - size) / (level + hd - 1)) if level + hd - 1 > 0 else F32(0)
        x1 = (bw * np.arange(level + wd, dtype=F32)).astype(np.int64)
        y1 = (bh * np.arange(level + hd, dtype=F32)).astype(np.int64)
        x1 = np.minimum(x1, width - size)   # "careful with the borders"
        y1 = np.minimum(y1, height - size)
        xs, ys = np.meshgrid(x1, y1, indexing="ij")  # x outer, y inner, as Caffe2's loops
        xs, ys = xs.reshape(-1), ys.reshape(-1)
        boxes.append(np.stack([xs, ys, xs + size - 1, ys + size - 1], axis=1))
    return np.concatenate(boxes).astype(F32) if boxes else np.zeros((0, 4), F32)


@register_kernel("RMACRegions", devices=("CPU",))
def rmac_regions(ctx, x):
    if not hasattr(x, "shape") or (x.size and x.ndim != 4):
        ctx.fail(f"{ctx.input_label(0)} must be a 4-D (N, C, H, W) tensor, got shape "
                 f"{tuple(getattr(x, 'shape', ()))}")
    if x.size == 0:
        return (np.zeros((0, 5), F32),)
    scales = ctx.args["scales"]
    ctx.enforce(scales >= 0, f"scales must be >= 0, got {scales}")
    boxes = regions(int(x.shape[2]), int(x.shape[3]), scales, ctx.args["overlap"])
    n = int(x.shape[0])
    batch = np.repeat(np.arange(n, dtype=F32), boxes.shape[0])[:, None]
    return (np.concatenate([batch, np.tile(boxes, (n, 1))], axis=1),)
