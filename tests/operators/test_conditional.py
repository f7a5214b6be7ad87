"""Conditional against a row-by-row select written here."""

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_reference


@pytest.mark.parametrize("dtype", [np.float32, np.int64, object])
def test_conditional_selects_rows(dtype):
    rng = np.random.default_rng(0)
    cond = rng.random(6) < 0.5
    t, f = rng.integers(0, 100, (6, 2, 3)), rng.integers(100, 200, (6, 2, 3))
    if dtype is object:  # a string tensor: bytes
        t, f = (np.vectorize(lambda v: str(v).encode(), otypes=[object])(a) for a in (t, f))
    t, f = t.astype(dtype), f.astype(dtype)

    def ref(cond, t, f):
        return [np.stack([t[i] if cond[i] else f[i] for i in range(len(cond))])]

    check_reference(core.CreateOperator("Conditional", ["c", "t", "f"], ["o"]), [cond, t, f],
                    ref)


@pytest.mark.parametrize("cond, t, f, match", [
    (np.ones(2, np.int32), np.zeros((2, 2)), np.zeros((2, 2)), "bool vector"),
    (np.ones(3, bool), np.zeros((2, 2)), np.zeros((2, 2)), "3 entries"),
    (np.ones(2, bool), np.zeros((2, 2)), np.zeros((2, 3)), "exact same shape"),
    (np.ones(2, bool), np.zeros((2, 2)), np.zeros((2, 2), np.float32), "exact same shape"),
])
def test_conditional_errors(cond, t, f, match):
    for name, value in (("c", cond), ("t", t), ("f", f)):
        workspace.FeedBlob(name, value)
    with pytest.raises(EnforceError, match=match):
        workspace.RunOperatorOnce(core.CreateOperator("Conditional", ["c", "t", "f"], ["o"]))
