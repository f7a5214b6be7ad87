"""SparseMatrixReshape against a dense reshape: the nonzeros of a dense matrix,
reshaped with NumPy, must be where the op moves the index pairs."""

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_reference


@pytest.mark.parametrize("old_shape, new_shape, dense_shape", [
    ((4, 6), (3, 8), (4, 6)), ((4, 6), (-1, 4), (4, 6)), ((4, 6), (2, -1), (4, 6)),
    ((-1, 6), (-1, 9), (3, 6))])
def test_matches_a_dense_reshape(old_shape, new_shape, dense_shape):
    rng = np.random.default_rng(0)
    dense = np.zeros(dense_shape)
    rows, cols = np.nonzero(rng.random(dense_shape) < 0.4)
    dense[rows, cols] = np.arange(1, rows.size + 1)
    order = rng.permutation(rows.size)  # any order of the pairs
    cols, rows = cols[order].astype(np.int64), rows[order].astype(np.int32)

    def ref(cols, rows):
        width = new_shape[1] if new_shape[1] != -1 else dense.size // new_shape[0]
        reshaped = dense.reshape(-1, width)
        values = dense[rows, cols]
        pairs = np.array([np.argwhere(reshaped == v)[0] for v in values]).reshape(-1, 2)
        return [pairs[:, 1].astype(np.int64), pairs[:, 0].astype(np.int32)]

    check_reference(core.CreateOperator("SparseMatrixReshape", ["cols", "rows"],
                                        ["new_cols", "new_rows"], old_shape=old_shape,
                                        new_shape=new_shape), [cols, rows], ref)


@pytest.mark.parametrize("old_shape, new_shape, match", [
    ((4, 6), (5, 5), "does not agree"), ((4, 6), (-1, -1), "Only one dimension"),
    ((-1, 6), (2, -1), "second dimension in `new_shape` must be positive"),
    ((4, 0), (4, 0), "second dimension in argument `old_shape`"),
    ((4, 6, 1), (4, 6), "exactly two integers"), ((4, 6), (-1, 5), "does not agree")])
def test_bad_shapes(old_shape, new_shape, match):
    workspace.FeedBlob("cols", np.array([1], np.int64))
    workspace.FeedBlob("rows", np.array([1], np.int32))
    with pytest.raises(EnforceError, match=match):
        workspace.RunOperatorOnce(core.CreateOperator(
            "SparseMatrixReshape", ["cols", "rows"], ["c", "r"], old_shape=old_shape,
            new_shape=new_shape))


@pytest.mark.parametrize("cols, rows, match", [
    ([6], [0], "input 0 .*column 6, outside \\[0, 6\\)"),
    ([0], [4], "input 1 .*row 4, outside \\[0, 4\\)"),
    ([0, 1], [0], "same size")])
def test_bad_indices_change_nothing(cols, rows, match):
    workspace.FeedBlob("cols", np.array(cols, np.int64))
    workspace.FeedBlob("rows", np.array(rows, np.int32))
    with pytest.raises(EnforceError, match=match):
        workspace.RunOperatorOnce(core.CreateOperator(
            "SparseMatrixReshape", ["cols", "rows"], ["cols", "rows"], old_shape=[4, 6],
            new_shape=[3, 8]))
    np.testing.assert_array_equal(workspace.FetchBlob("cols"), cols)
