"""RMACRegions against the region grid computed here from Caffe2's loops."""

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.testing import check_reference

F = np.float32


def ref_regions(n, h, w, scales=3, overlap=0.4):
    short = min(h, w)
    step, best = 0, np.finfo(F).max
    if w != h:
        for idx in range(1, 7):
            b = F((max(h, w) - short) / (1.0 * idx))
            val = abs((F(short * short) - F(short) * b) / F(short * short) - F(overlap))
            if val < best:
                step, best = idx, val
    wd, hd = (step if w > h else 0), (step if h > w else 0)
    rows = []
    for level in range(1, scales + 1):
        size = 2 * short // (level + 1)
        if size == 0:
            break
        bw = F((w - size) / (1.0 * (level + wd - 1))) if level + wd - 1 > 0 else F(0)
        bh = F((h - size) / (1.0 * (level + hd - 1))) if level + hd - 1 > 0 else F(0)
        for i in range(level + wd):
            for j in range(level + hd):
                x1, y1 = int(bw * F(i)), int(bh * F(j))
                x1 -= max(0, x1 + size - w)
                y1 -= max(0, y1 + size - h)
                rows.append([x1, y1, x1 + size - 1, y1 + size - 1])
    return np.array([[b] + r for b in range(n) for r in rows], F).reshape(-1, 5)


@pytest.mark.parametrize("n, h, w, scales", [(2, 7, 10, 3), (1, 10, 4, 2), (3, 5, 5, 3),
                                             (1, 1, 9, 3), (2, 30, 17, 5)])
def test_rmac_regions(n, h, w, scales):
    x = np.zeros((n, 2, h, w), F)
    check_reference(core.CreateOperator("RMACRegions", ["x"], ["rois"], scales=scales), [x],
                    lambda x: [ref_regions(n, h, w, scales)], threshold=0)


def test_empty_input_gives_no_regions():
    workspace.FeedBlob("x", np.zeros((0, 3, 4, 4), F))
    workspace.RunOperatorOnce(core.CreateOperator("RMACRegions", ["x"], ["rois"]))
    assert workspace.FetchBlob("rois").shape == (0, 5)
