"""CAFFE2LITE_CHECK_KERNELS=1: an op whose kernel changes an input it does not declare
in place fails, and so does one that changes any input and then fails; the inputs are
put back first.  Off (the default), kernels run unwrapped."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import KernelContractError
from caffe2lite.runtime import OpSchema, flags, register_kernel, register_schema, registry
from helpers import assert_unchanged, snapshot


def _scribble(ctx, x):
    x[0] = 99.0  # the bug: a kernel writing into its input
    return (x * 2,)


def _scribble_then_fail(ctx, x):
    x[0] = 99.0
    ctx.fail("something else went wrong")


@pytest.fixture
def scribblers():
    saved = flags.get("caffe2lite_check_kernels")
    with registry.isolated():
        for op_type, kernel in (("TestScribble", _scribble),
                                ("TestScribbleThenFail", _scribble_then_fail)):
            register_schema(OpSchema(op_type, num_inputs=1, num_outputs=1,
                                     allow_inplace={(0, 0)}, inputs=[("X", "")]))
            register_kernel(op_type)(kernel)
        yield
    workspace.GlobalInit(["caffe2", f"--caffe2lite_check_kernels={saved}"])


def _x():
    workspace.FeedBlob("x", np.array([1.0, 2.0], np.float32))


def test_off_by_default_a_scribbling_kernel_goes_unnoticed(scribblers):
    _x()
    workspace.RunOperatorOnce(core.CreateOperator("TestScribble", ["x"], ["y"]))
    assert workspace.FetchBlob("x").tolist() == [99.0, 2.0]


def test_on_it_fails_naming_the_input_and_puts_it_back(scribblers):
    workspace.GlobalInit(["caffe2", "--caffe2lite_check_kernels=1"])
    _x()
    before = snapshot()
    with pytest.raises(KernelContractError, match=r"op TestScribble: the kernel changed input 0 'X' "
                                            r"\(blob 'x'\), which the op does not declare in "
                                            r"place \(CAFFE2LITE_CHECK_KERNELS"):
        workspace.RunOperatorOnce(core.CreateOperator("TestScribble", ["x"], ["y"]))
    assert_unchanged(before)


def test_a_declared_in_place_output_may_change_its_input(scribblers):
    workspace.GlobalInit(["caffe2", "--caffe2lite_check_kernels=1"])
    _x()
    workspace.RunOperatorOnce(core.CreateOperator("TestScribble", ["x"], ["x"]))
    assert workspace.FetchBlob("x").tolist() == [198.0, 4.0]


def test_a_kernel_that_changes_an_input_and_then_fails_is_caught(scribblers):
    workspace.GlobalInit(["caffe2", "--caffe2lite_check_kernels=1"])
    _x()
    before = snapshot()
    with pytest.raises(KernelContractError, match=r"changed input 0 'X' \(blob 'x'\) and then failed "
                                            r"\(EnforceError: .*something else went wrong\)"):
        workspace.RunOperatorOnce(core.CreateOperator("TestScribbleThenFail", ["x"], ["x"]))
    assert_unchanged(before)


def test_the_environment_variable_sets_the_default():
    env = dict(os.environ, CAFFE2LITE_CHECK_KERNELS="1")
    done = subprocess.run([sys.executable, "-c", "from caffe2lite.runtime import flags; "
                           "print(flags.get('caffe2lite_check_kernels'))"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "1", done.stderr
