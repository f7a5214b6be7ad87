"""Tile, TileGradient, NumpyTile and LengthsTile against numpy.tile / numpy.repeat."""

import numpy as np
from _train_helpers import assert_fails_unchanged
from hypothesis import given
from hypothesis import strategies as st

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.testing import check_gradient
from helpers import run_op

shapes = st.lists(st.integers(1, 3), min_size=1, max_size=3).map(tuple)


@given(shapes, st.integers(0, 3), st.data())
def test_tile_by_argument_and_by_input(shape, tiles, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    reps = [1] * len(shape)
    reps[axis] = tiles
    want = np.tile(x, reps)
    np.testing.assert_array_equal(run_op("Tile", {"X": x}, "Y", tiles=tiles, axis=axis)[0], want)
    got = run_op("Tile", {"X": x, "t": np.array([tiles], np.int32),
                          "a": np.array([axis], np.int32)}, "Y")[0]
    np.testing.assert_array_equal(got, want)
    if tiles:
        dx = run_op("TileGradient", {"dY": want}, "dX", tiles=tiles, axis=axis)[0]
        np.testing.assert_allclose(dx, x * tiles)


def test_tile_gradient_and_int64_quirk():
    x = np.random.default_rng(1).standard_normal((2, 3)).astype(np.float64)
    check_gradient(core.CreateOperator("Tile", ["X"], ["Y"], tiles=3, axis=1), [x], 0)
    check_gradient(core.CreateOperator("Tile", ["X", "t", "a"], ["Y"]),
                   [x, np.array([2], np.int32), np.array([0], np.int32)], 0)
    # Caffe2 kept old models working: an int64 tiles input without an axis input tiles axis 0
    got = run_op("Tile", {"X": x, "t": np.array([2], np.int64)}, "Y", axis=1)[0]
    np.testing.assert_array_equal(got, np.tile(x, (2, 1)))
    (strings,) = run_op("Tile", {"S": np.array([b"a", b"b"], dtype=object)}, "Y",
                        tiles=2, axis=0)
    assert list(strings) == [b"a", b"b", b"a", b"b"]


def test_tile_needs_its_arguments():
    x = np.ones((2, 2), np.float32)
    assert_fails_unchanged(core.CreateOperator("Tile", ["X"], ["Y"], tiles=2), {"X": x},
                           EnforceError, "'tiles' and 'axis'")
    assert_fails_unchanged(core.CreateOperator("Tile", ["X", "t"], ["Y"]),
                           {"X": x, "t": np.array([2], np.int32)}, EnforceError, "'axis'")
    assert_fails_unchanged(core.CreateOperator("Tile", ["X", "t", "a"], ["Y"]),
                           {"X": x, "t": np.array([1, 2], np.int32),
                            "a": np.array([0], np.int32)}, EnforceError, "size 1")


@given(st.lists(st.integers(0, 3), min_size=1, max_size=4), st.data())
def test_numpy_tile(shape, data):
    repeats = np.array(data.draw(st.lists(st.integers(0, 3), min_size=len(shape),
                                          max_size=len(shape))), np.int64)
    x = np.random.default_rng(0).standard_normal(shape)
    np.testing.assert_array_equal(run_op("NumpyTile", {"x": x, "r": repeats}, "y")[0],
                                  np.tile(x, repeats))


def test_numpy_tile_refuses_wrong_repeats():
    op = core.CreateOperator("NumpyTile", ["x", "r"], ["y"])
    assert_fails_unchanged(op, {"x": np.ones((2, 2)), "r": np.array([2], np.int64)},
                           EnforceError, "one entry per dim")
    assert_fails_unchanged(op, {"x": np.ones(2), "r": np.array([-1], np.int64)},
                           EnforceError, "negative")


@given(st.lists(st.integers(0, 4), min_size=1, max_size=6))
def test_lengths_tile(lengths):
    lengths = np.array(lengths, np.int32)
    data = np.arange(lengths.size * 2, dtype=np.float32).reshape(-1, 2)
    (out,) = run_op("LengthsTile", {"d": data, "l": lengths}, "o")
    want = np.array([row for row, n in zip(data.tolist(), lengths) for _ in range(n)],
                    np.float32).reshape(-1, 2)
    np.testing.assert_array_equal(out, want)


def test_lengths_tile_gradient_is_lengths_sum():
    data = np.random.default_rng(2).standard_normal((3, 2)).astype(np.float32)
    check_gradient(core.CreateOperator("LengthsTile", ["d", "l"], ["o"]),
                   [data, np.array([2, 0, 3], np.int32)], 0)
    assert_fails_unchanged(core.CreateOperator("LengthsTile", ["d", "l"], ["o"]),
                           {"d": data, "l": np.array([1, 1], np.int32)}, EnforceError,
                           "one row per entry")


def test_tile_shape_inference():
    net = core.Net("tile")
    net.Tile("X", "Y", tiles=3, axis=1)
    shapes, _ = workspace.InferShapesAndTypes([net], {"X": [2, 4]})
    assert shapes["Y"] == [2, 12]
