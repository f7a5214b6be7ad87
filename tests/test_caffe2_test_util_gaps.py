"""The parts of Caffe2's test utilities its operator tests lean on beyond the basic
checks: segmented and sparse tensors, temporary workspaces, serial.given's single
example, gradient checks over several outputs, test_util's helpers."""

import unittest
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import caffe2lite.hypothesis_test_util as hu
import caffe2lite.serialized_test.serialized_test_util as serial
from caffe2lite import core, test_util, workspace


@given(data=hu.segmented_tensor(min_dim=2, max_dim=2, max_value=4))
@settings(max_examples=20)
def test_segmented_tensor_has_sorted_ids_from_zero(data):
    values, ids = data
    assert ids.shape == (values.shape[0],) and ids.dtype == np.int32
    assert ids[0] == 0 and np.all(np.diff(ids) >= 0) and np.all(np.diff(ids) <= 1)


@given(data=hu.lengths_tensor(allow_empty=True, min_dim=1, max_dim=2, max_value=4))
@settings(max_examples=30)
def test_lengths_tensor_covers_the_rows_and_may_be_empty(data):
    values, lengths = data
    assert lengths.dtype == np.int32 and lengths.sum() == values.shape[0]


def test_lengths_tensor_allow_empty_draws_empty_data():
    seen = []

    @given(data=hu.lengths_tensor(allow_empty=True, max_value=3))
    @settings(max_examples=60)
    def draw(data):
        seen.append(data[0].shape[0])

    draw()
    assert 0 in seen and any(n > 0 for n in seen)


@given(data=hu.sparse_lengths_tensor(min_dim=2, max_dim=2, max_value=4))
@settings(max_examples=20)
def test_sparse_lengths_tensor_indexes_rows(data):
    values, indices, lengths = data
    assert indices.dtype == np.int64 and 1 <= indices.size <= values.shape[0]
    assert np.all((indices >= 0) & (indices < values.shape[0]))
    assert lengths.sum() == indices.size


def test_temp_workspace_switches_empties_and_returns():
    workspace.FeedBlob("kept", np.ones(1, np.float32))
    with hu.temp_workspace("scratch"):
        assert workspace.CurrentWorkspace() == "scratch"
        assert not workspace.HasBlob("kept")
        workspace.FeedBlob("tmp", np.ones(1, np.float32))
    assert workspace.CurrentWorkspace() == "default" and workspace.HasBlob("kept")
    with hu.temp_workspace("scratch"):
        assert not workspace.HasBlob("tmp")


def test_rand_array_of_no_dims_is_a_scalar_array():
    value = test_util.rand_array()
    assert value.shape == () and value.dtype == np.float32 and -0.5 <= value < 0.5


def test_serial_given_gradient_checks_and_tempdirs():
    """Run as a unittest case, as Caffe2's tests are (defined here so that pytest does
    not collect it a second time)."""
    calls, made, outer = [], [], []

    class Checks(serial.SerializedTestCase):
        @serial.given(x=hu.tensor(), **hu.gcs_cpu_only)
        @settings(deadline=None)
        def test_serial_given_runs_one_example(self, x, gc, dc):
            calls.append(x)

        # An outer @settings, as fc_operator_test writes it: accepted (hypothesis refuses
        # a second settings on one test) and, as in Caffe2, still one example.
        @settings(max_examples=50)
        @serial.given(y=st.integers(0, 9))
        def test_settings_above_serial_given(self, y):
            outer.append(y)

        def test_gradient_over_two_outputs(self):
            x = np.linspace(-1, 1, 12).astype(np.float32).reshape(3, 4)
            op = core.CreateOperator("Split", ["X"], ["A", "B"], axis=1, split=[1, 3])
            self.assertGradientChecks(hu.cpu_do, op, [x], 0, [0, 1])

        def test_make_tempdir_is_a_path(self):
            path = self.make_tempdir()
            assert isinstance(path, Path) and path.is_dir()
            made.append(path)

    result = unittest.TestResult()
    unittest.defaultTestLoader.loadTestsFromTestCase(Checks).run(result)
    assert result.wasSuccessful(), result.errors + result.failures
    assert len(calls) == 1 and len(outer) == 1
    assert not made[0].exists()  # removed after the test
