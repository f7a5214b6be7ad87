"""The string ops against Python's str/bytes methods."""

import numpy as np
from _train_helpers import assert_fails_unchanged
from hypothesis import given
from hypothesis import strategies as st

from caffe2lite import core
from caffe2lite.errors import EnforceError
from helpers import run_op

words = st.lists(st.text(alphabet="abé", max_size=5), max_size=5)


@given(words, st.booleans(), st.integers(0, 4))
def test_prefix_suffix_and_predicates(strings, as_bytes, n):
    # Caffe2's strings are std::string: str is fed UTF-8 encoded, lengths count bytes,
    # and results come back as bytes
    encoded = [s.encode() for s in strings]
    x = np.array(encoded if as_bytes else strings, dtype=object)
    (prefix,) = run_op("StringPrefix", {"s": x}, "o", length=n)
    (suffix,) = run_op("StringSuffix", {"s": x}, "o", length=n)
    assert list(prefix) == [s[:n] for s in encoded]
    assert list(suffix) == [s[len(s) - n:] if n else s[:0] for s in encoded]
    probe = "a"
    for op_type, arg, method in (("StringStartsWith", "prefix", "startswith"),
                                 ("StringEndsWith", "suffix", "endswith")):
        (got,) = run_op(op_type, {"s": x}, "b", **{arg: probe})
        want = [getattr(s, method)(probe.encode()) for s in encoded]
        np.testing.assert_array_equal(got, np.array(want, bool))
    (eq,) = run_op("StringEquals", {"s": x}, "b", text="ab")
    np.testing.assert_array_equal(eq, np.array([s == b"ab" for s in encoded], bool))


def test_string_join():
    x = np.array([[1.5, 2.0], [3.0, 1e-7]], np.float32)
    (rows,) = run_op("StringJoin", {"x": x}, "o")
    assert list(rows) == [b"1.5,2,", b"3,1e-07,"]  # every element followed by ','
    (cols,) = run_op("StringJoin", {"x": x}, "o", axis=1, delimiter="|")
    assert list(cols) == [b"1.5|3|", b"2|1e-07|"]
    (flags,) = run_op("StringJoin", {"x": np.array([True, False])}, "o")
    assert list(flags) == [b"1,", b"0,"]
    (names,) = run_op("StringJoin", {"x": np.array([[b"a", b"b"]], dtype=object)}, "o",
                      delimiter="")
    assert list(names) == [b"ab"]


def test_errors():
    op = core.CreateOperator("StringPrefix", ["s"], ["o"])
    assert_fails_unchanged(op, {"s": np.ones(2, np.float32)}, EnforceError, "strings")
    op = core.CreateOperator("StringJoin", ["s"], ["o"], axis=1)
    assert_fails_unchanged(op, {"s": np.ones(2, np.float32)}, EnforceError, "axis")
