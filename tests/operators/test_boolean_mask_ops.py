"""BooleanMask(+Gradient), BooleanMaskLengths, BooleanUnmask and SequenceMask against
loops over Caffe2's semantics."""

import numpy as np
from _train_helpers import assert_fails_unchanged
from hypothesis import given
from hypothesis import strategies as st

from caffe2lite import core
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_gradient
from helpers import run_op


@given(st.lists(st.booleans(), min_size=1, max_size=6))
def test_boolean_mask_and_lengths(mask):
    mask = np.array(mask)
    data = np.arange(mask.size * 2, dtype=np.float64).reshape(-1, 2)
    out, idx = run_op("BooleanMask", {"d": data, "m": mask}, ["o", "i"])
    np.testing.assert_array_equal(out, [row for row, keep in zip(data, mask) if keep]
                                  or np.zeros((0, 2)))
    np.testing.assert_array_equal(idx, [i for i, keep in enumerate(mask) if keep])
    check_gradient(core.CreateOperator("BooleanMask", ["d", "m"], ["o"]), [data, mask], 0)
    lengths = np.array([mask.size // 2, mask.size - mask.size // 2], np.int32)
    (counts,) = run_op("BooleanMaskLengths", {"l": lengths, "m": mask}, "c")
    np.testing.assert_array_equal(counts, [mask[:lengths[0]].sum(), mask[lengths[0]:].sum()])


def test_boolean_unmask():
    masks = [np.array([True, False, False, True]), np.array([False, True, True, False])]
    values = [np.array([1, 4], np.int16), np.array([2, 3], np.int16)]
    (out,) = run_op("BooleanUnmask", {"m0": masks[0], "v0": values[0], "m1": masks[1],
                                      "v1": values[1]}, "o")
    np.testing.assert_array_equal(out, [1, 2, 3, 4])
    op = core.CreateOperator("BooleanUnmask", ["m0", "v0", "m1", "v1"], ["o"])
    assert_fails_unchanged(op, {"m0": masks[0], "v0": values[0], "m1": masks[0],
                                "v1": values[1]}, EnforceError, "exactly once")


def mask_reference(x, mode, axis, lengths=None, radius=10, fill=-np.inf, batch=-1):
    """Masks (row i, column j) of the (before, rows, columns) view with Python loops."""
    shape = x.shape
    before = int(np.prod(shape[:batch + 1])) if batch >= 0 else 1
    rows = int(np.prod(shape[batch + 1:axis])) if batch >= 0 else int(np.prod(shape[:axis]))
    cols = int(np.prod(shape[axis:]))
    out = x.reshape(before, rows, cols).copy()
    rules = {"sequence": lambda i, j: j >= lengths[i],
             "window": lambda i, j: j > lengths[i] + radius or j < lengths[i] - radius,
             "upper": lambda i, j: j > i, "lower": lambda i, j: j < i,
             "upperdiag": lambda i, j: j >= i, "lowerdiag": lambda i, j: j <= i}
    for b in range(before):
        for i in range(rows):
            for j in range(cols):
                if rules[mode](i, j):
                    out[b, i, j] = fill
    return out.reshape(shape)


@given(st.lists(st.integers(1, 3), min_size=2, max_size=4),
       st.sampled_from(["sequence", "window", "upper", "lower", "upperdiag", "lowerdiag"]),
       st.booleans(), st.data())
def test_sequence_mask(shape, mode, batched, data):
    x = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    axis = data.draw(st.integers(1, len(shape) - 1))
    batch = data.draw(st.integers(0, axis - 1)) if batched else -1
    rows = int(np.prod(shape[batch + 1:axis])) if batched else int(np.prod(shape[:axis]))
    args = dict(mode=mode, axis=axis, fill_val=-7.0, radius=1, batch=batch)
    inputs = {"x": x}
    lengths = None
    if mode in ("sequence", "window"):
        lengths = np.array(data.draw(st.lists(st.integers(0, 4), min_size=rows,
                                              max_size=rows)), np.int32)
        inputs["l"] = lengths
    (y,) = run_op("SequenceMask", inputs, "y", **args)
    np.testing.assert_array_equal(y, mask_reference(x, mode, axis, lengths, 1, -7.0, batch))
    (g,) = run_op("SequenceMask", inputs, "g", grad=True, **args)
    np.testing.assert_array_equal(g, mask_reference(x, mode, axis, lengths, 1, 0.0, batch))


def test_sequence_mask_repeat_and_gradient():
    x = np.arange(12, dtype=np.float64).reshape(2, 3, 2)
    lengths = np.array([1, 2], np.int32)
    (y,) = run_op("SequenceMask", {"x": x, "l": lengths}, "y", mode="sequence", axis=1,
                  repeat_from_axis=-1, fill_val=0.5)
    want = x.copy()
    want[0, 1:, :] = 0.5
    want[1, 2:, :] = 0.5
    np.testing.assert_array_equal(y, want)
    op = core.CreateOperator("SequenceMask", ["x", "l"], ["y"], mode="sequence", axis=2,
                             fill_val=1e-9)
    check_gradient(op, [x, np.array([0, 1, 2, 1, 2, 0], np.int32)], 0)
    assert_fails_unchanged(core.CreateOperator("SequenceMask", ["x"], ["y"], mode="diag"),
                           {"x": x}, EnforceError, "Unsupported mode")
