"""Reference NMS loops shared by the detection op tests (not a test module).

Both take the overlap measure as a function, so the upright tests (Detectron's
+1 IoU) and the rotated ones (polygon clipping) run the same greedy and
Soft-NMS rules, written from Caffe2's nms_cpu / soft_nms_cpu one box at a time.
"""

from __future__ import annotations

import math

import numpy as np


def greedy_nms(boxes, order, thresh, top_n, overlap):
    """Kept indices: a box survives while its overlap with every kept box is <= thresh."""
    keep = []
    for i in order:
        if 0 <= top_n <= len(keep):
            break
        if all(overlap(boxes[k], boxes[i]) <= thresh for k in keep):
            keep.append(i)
    return keep


def soft_nms(boxes, scores, inds, sigma, thresh, min_score, linear, overlap):
    """(kept indices in pick order, updated scores): pick the best pending box, scale the
    others' scores (linear: 1 - IoU above thresh; gaussian: exp(-IoU^2 / sigma)), drop
    those below min_score."""
    scores = scores.astype(np.float64).copy()
    pending, keep = list(inds), []
    while pending:
        i = max(pending, key=lambda j: (scores[j], -j))
        keep.append(i)
        pending.remove(i)
        for j in pending:
            o = overlap(boxes[i], boxes[j])
            scores[j] *= (1 - o if o > thresh else 1.0) if linear else math.exp(-o * o / sigma)
        pending = [j for j in pending if scores[j] >= min_score]
    return keep, scores
