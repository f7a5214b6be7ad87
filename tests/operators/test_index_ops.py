"""The index ops against a Python dict model, IndexHash against Python-int arithmetic."""

import numpy as np
import pytest
from _train_helpers import assert_fails_unchanged
from hypothesis import given
from hypothesis import strategies as st

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from helpers import run_op


def run(op_type, inputs, outputs, **args):
    workspace.RunOperatorOnce(core.CreateOperator(op_type, inputs, outputs, **args))
    return [workspace.FetchBlob(o) for o in outputs]


@given(st.lists(st.lists(st.integers(0, 6), max_size=6), max_size=4), st.booleans())
def test_index_get_matches_dict(batches, as_strings):
    create = "StringIndexCreate" if as_strings else "LongIndexCreate"
    run(create, [], ["idx"], max_elements=100)
    model = {}
    for batch in batches:
        keys = np.array([f"k{v}" for v in batch] if as_strings else batch,
                        dtype=object if as_strings else np.int64)
        want = []
        for k in keys.tolist():
            model.setdefault(k, len(model) + 1)
            want.append(model[k])
        workspace.FeedBlob("keys", keys)
        (got,) = run("IndexGet", ["idx", "keys"], ["ids"])
        np.testing.assert_array_equal(got, want)
    (stored,) = run("IndexStore", ["idx"], ["items"])
    # strings come back as bytes, Caffe2's std::string
    assert list(stored) == [k.encode() if as_strings else k
                            for k in sorted(model, key=model.get)]
    (size,) = run("IndexSize", ["idx"], ["n"])
    assert size == len(model) + 1 and size.dtype == np.int64


def test_load_freeze_and_limits():
    run("IntIndexCreate", [], ["idx"], max_elements=4)
    workspace.FeedBlob("items", np.array([0, 7, 9], np.int32))
    run("IndexLoad", ["idx", "items"], ["idx"], skip_first_entry=1)  # 7 -> 1, 9 -> 2
    workspace.FeedBlob("q", np.array([[9, 5], [7, 5]], np.int32))
    np.testing.assert_array_equal(run("IndexGet", ["idx", "q"], ["ids"])[0], [[2, 3], [1, 3]])
    workspace.FeedBlob("q", np.array([1, 2], np.int32))  # two new keys: over max_elements
    op = core.CreateOperator("IndexGet", ["idx", "q"], ["ids"])
    assert_fails_unchanged(op, {}, EnforceError, "max size")
    assert run("IndexSize", ["idx"], ["n"])[0] == 4  # nothing was added
    run("IndexFreeze", ["idx"], [])
    np.testing.assert_array_equal(run("IndexGet", ["idx", "q"], ["ids"])[0], [0, 0])
    assert_fails_unchanged(op, {"q": np.array([1], np.int64)}, EnforceError, "int32 keys")
    workspace.FeedBlob("dups", np.array([1, 1], np.int32))
    with pytest.raises(EnforceError, match="Repeated elements"):
        run("IndexLoad", ["idx", "dups"], [])


def test_index_save_load(tmp_path):
    run("StringIndexCreate", [], ["idx"], max_elements=10)
    workspace.FeedBlob("keys", np.array([b"a", b"b"], dtype=object))
    run("IndexGet", ["idx", "keys"], ["ids"])
    run("IndexFreeze", ["idx"], [])
    db = str(tmp_path / "index.minidb")
    run("Save", ["idx"], [], absolute_path=1, db_type="minidb", db=db)
    workspace.ResetWorkspace()
    run("Load", [], ["idx"], absolute_path=1, db_type="minidb", db=db)
    workspace.FeedBlob("keys", np.array([b"b", b"c"], dtype=object))
    np.testing.assert_array_equal(run("IndexGet", ["idx", "keys"], ["ids"])[0], [2, 0])


def hash_reference(value, bits, seed, modulo):
    """Caffe2's hash in Python ints, wrapping to ``bits`` like the C++ code."""
    def wrap(v, width=bits):
        v &= (1 << width) - 1
        return v - (1 << width) if v >> (width - 1) else v
    h = wrap(wrap(seed * 0xDEADBEEF, 64) if bits == 32 else seed * 0xDEADBEEF)
    for b in (value & ((1 << bits) - 1)).to_bytes(bits // 8, "little"):
        h = wrap(h * 65537 + (b - 256 if b > 127 else b))
    return h % modulo


@given(st.sampled_from([np.int32, np.int64]), st.lists(st.integers(-2**31, 2**31 - 1),
                                                       max_size=6),
       st.integers(0, 2**40), st.integers(1, 2**31 - 1))
def test_index_hash(dtype, values, seed, modulo):
    ids = np.array(values, dtype)
    (h,) = run_op("IndexHash", {"i": ids}, "h", seed=seed, modulo=modulo)
    bits = np.dtype(dtype).itemsize * 8
    assert h.dtype == dtype
    np.testing.assert_array_equal(h, [hash_reference(v, bits, seed, modulo) for v in values])
