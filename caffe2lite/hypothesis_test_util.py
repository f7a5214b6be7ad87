"""Caffe2's ``caffe2.python.hypothesis_test_util`` (``hu``) for caffe2lite.

Caffe2's operator tests are written against this module: strategies for
tensors (``hu.tensor``, ``hu.tensors``, ``hu.arrays``, ``hu.dims``, ``hu.lengths``,
...), the device options to run on (``hu.gcs``, ``hu.gcs_cpu_only``), and
``HypothesisTestCase`` with ``assertReferenceChecks``, ``assertGradientChecks``,
``assertDeviceChecks``, ``assertValidationChecks`` and ``assertRunOpRaises``.
Such a test ports by changing ``import caffe2.python.hypothesis_test_util as hu``
to ``import caffe2lite.hypothesis_test_util as hu``.

The checks run the op through caffe2lite.testing (a fresh workspace per run,
gradients from the registry against finite differences).  Devices: the CPU,
plus GPU 0 when ``workspace.has_gpu_support`` (CuPy and a GPU present).
Needs ``hypothesis`` (the ``test`` extra); the runtime never imports this module.
"""

from __future__ import annotations

import os

import numpy as np

try:
    from hypothesis import HealthCheck, settings
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ModuleNotFoundError as e:  # the runtime does not need it: say where it comes from
    if e.name != "hypothesis":
        raise
    raise ModuleNotFoundError(
        "caffe2lite.hypothesis_test_util (and serialized_test_util) need the hypothesis "
        "library, which caffe2lite's runtime does not install: pip install "
        "'caffe2lite[test]' (or pip install hypothesis)", name="hypothesis") from e

from caffe2lite import core, testing, workspace
from caffe2lite.proto import caffe2_pb2
from caffe2lite.test_util import TestCase

# Caffe2's profiles: 10 examples with a 10 s deadline ("dev"), 50 derandomized
# ("sandcastle"), picked by CAFFE2_HYPOTHESIS_PROFILE -- loaded only where nothing has
# set hypothesis up yet (its stock 200 ms deadline still in force), so a test suite's own
# profile (caffe2lite's tests/conftest.py) is left alone.
settings.register_profile("sandcastle", derandomize=True, database=None, max_examples=50,
                          deadline=10000, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=10, deadline=10000)
settings.register_profile("debug", max_examples=1000, deadline=10000)
if settings.default.deadline is not None and \
        settings.default.deadline.total_seconds() < 1:
    settings.load_profile(os.environ.get("CAFFE2_HYPOTHESIS_PROFILE", "dev"))

cpu_do = caffe2_pb2.DeviceOption()
cuda_do = caffe2_pb2.DeviceOption(device_type=caffe2_pb2.CUDA)
gpu_do = cuda_do
hip_do = caffe2_pb2.DeviceOption(device_type=caffe2_pb2.HIP)
_gpu = [gpu_do] if workspace.has_gpu_support else []
device_options = [cpu_do] + _gpu
expanded_device_options = [cpu_do] + [caffe2_pb2.DeviceOption(device_type=caffe2_pb2.CUDA,
                                                               device_id=i)
                                      for i in range(workspace.NumCudaDevices())]

# gc: the device a check runs on; dc: every device, for assertDeviceChecks.
gcs = dict(gc=st.sampled_from(device_options), dc=st.just(device_options))
gcs_cpu_only = dict(gc=st.sampled_from([cpu_do]), dc=st.just([cpu_do]))
gcs_gpu_only = dict(gc=st.sampled_from(_gpu or [cpu_do]), dc=st.just(_gpu or [cpu_do]))
gcs_cuda_only = gcs_gpu_only
gcs_no_hip = gcs


def is_sandcastle() -> bool:
    return False


def is_travis() -> bool:
    return False


def floats(*args, **kwargs):
    """hypothesis's floats, 32 bits wide unless ``width`` says otherwise, the bounds
    rounded to float32 (Caffe2's hu.floats)."""
    if "width" not in kwargs:
        kwargs["width"] = 32
        for bound in ("min_value", "max_value"):
            if kwargs.get(bound) is not None:
                kwargs[bound] = float(np.float32(kwargs[bound]))
    return st.floats(*args, **kwargs)


def dims(min_value=1, max_value=5):
    return st.integers(min_value=min_value, max_value=max_value)


def elements_of_type(dtype=np.float32, filter_=None):
    """Values of ``dtype`` as Caffe2 drew them: floats in [-1, 1], ints across int32's
    range (or the type's, if narrower), booleans."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        elems = st.floats(min_value=-1.0, max_value=1.0, width=8 * dtype.itemsize)
    elif dtype.kind in "iu":
        info = np.iinfo(dtype)
        elems = st.integers(min_value=max(int(info.min), -2**31),
                            max_value=min(int(info.max), 2**31 - 1))
    elif dtype.kind == "b":
        elems = st.booleans()
    else:
        raise ValueError(f"elements_of_type: unexpected dtype {dtype}")
    return elems if filter_ is None else elems.filter(filter_)


def arrays(dims, dtype=np.float32, elements=None, unique=False):
    if elements is None:
        elements = elements_of_type(dtype)
    return hnp.arrays(dtype, dims, elements=elements, unique=unique)


def tensor(min_dim=1, max_dim=4, dtype=np.float32, elements=None, **kwargs):
    dims_ = st.lists(dims(**kwargs), min_size=min_dim, max_size=max_dim)
    return dims_.flatmap(lambda d: arrays(d, dtype, elements))


def tensor1d(min_len=1, max_len=64, dtype=np.float32, elements=None):
    return tensor(1, 1, dtype, elements, min_value=min_len, max_value=max_len)


def tensors(n, min_dim=1, max_dim=4, dtype=np.float32, elements=None, **kwargs):
    """``n`` arrays of one random shape."""
    dims_ = st.lists(dims(**kwargs), min_size=min_dim, max_size=max_dim)
    return dims_.flatmap(lambda d: st.lists(arrays(d, dtype, elements), min_size=n,
                                            max_size=n))


def tensors1d(n, min_len=1, max_len=64, dtype=np.float32, elements=None):
    return tensors(n, 1, 1, dtype, elements, min_value=min_len, max_value=max_len)


def segment_ids(size, is_sorted):
    """int32 segment ids for ``size`` rows: sorted from 0 without gaps, or any in [0, 2 * size)."""
    if size == 0:
        return st.just(np.empty(shape=[0], dtype=np.int32))
    if is_sorted:
        return arrays([size], dtype=np.int32, elements=st.booleans()).map(
            lambda x: np.cumsum(x, dtype=np.int32) - x[0])
    return arrays([size], dtype=np.int32,
                  elements=st.integers(min_value=0, max_value=2 * size))


def lengths(size, min_segments=None, max_segments=None, **kwargs):
    """int32 lengths of segments that add up to ``size``."""
    if min_segments is None:
        min_segments = 0
    if max_segments is None:
        max_segments = size
    assert min_segments >= 0 and min_segments <= max_segments
    if size == 0 and max_segments == 0:
        return st.just(np.empty(shape=[0], dtype=np.int32))
    assert max_segments > 0, "size is not 0, need at least one segment"
    return st.integers(min_value=max(min_segments - 1, 0), max_value=max_segments - 1).flatmap(
        lambda num_borders: hnp.arrays(np.int32, num_borders,
                                       elements=st.integers(0, size))).map(
        lambda x: np.append(x, np.array([0, size], dtype=np.int32))).map(
        np.sort).map(np.diff)


def sparse_lengths_tensor(**kwargs):
    """(data, lengths) with the rows of data split into segments."""
    return tensor(**kwargs).flatmap(
        lambda data: st.tuples(st.just(data), lengths(data.shape[0])))


def lengths_tensor(min_segments=None, max_segments=None, *args, **kwargs):
    gen = tensor(*args, **kwargs)
    return gen.flatmap(lambda data: st.tuples(
        st.just(data), lengths(len(data), min_segments, max_segments)))


class HypothesisTestCase(TestCase):
    """Caffe2's operator-test base class: each check raises AssertionError on failure."""

    def assertReferenceChecks(self, device_option, op, inputs, reference,  # noqa: N802
                              input_device_options=None, threshold=1e-4, output_to_grad=None,
                              grad_reference=None, atol=None, outputs_to_check=None,
                              ensure_outputs_are_inferred=False):
        """Run ``op`` on ``inputs`` in a temporary workspace and compare each output with
        ``reference(*inputs)`` (within ``threshold`` relative and ``atol``, default
        ``threshold``, absolute; strings exactly).  With ``grad_reference``, the gradient
        ops of ``output_to_grad`` (fed the output itself as its gradient, as Caffe2 did)
        are compared with ``grad_reference(output, reference_outputs, inputs)``.
        Returns the op's outputs."""
        op = testing.op_on_device(op, device_option)
        if len(op.input) > len(inputs):
            raise ValueError(f"must supply an input for each input of the op: "
                             f"{list(op.input)} vs {len(inputs)} inputs")
        with workspace.WorkspaceGuard("__caffe2lite_hu_temp__"):
            workspace.ResetWorkspace()
            try:
                _feed(op, inputs, input_device_options)
                workspace.RunOperatorOnce(op)
                expected = reference(*inputs)
                if not isinstance(expected, (tuple, list)):
                    raise RuntimeError("You are providing a wrong reference implementation. "
                                       "A proper one should return a tuple/list of numpy "
                                       "arrays.")
                outs = []
                for i, (name, ref) in enumerate(zip(op.output, expected)):
                    if outputs_to_check is not None and i not in outputs_to_check:
                        continue
                    output = workspace.FetchBlob(name)
                    _assert_close(output, ref, threshold if atol is None else atol, threshold,
                                  f"{op.type}: output {i} ('{name}') differs from the reference")
                    outs.append(output)
                if grad_reference is not None:
                    self._assert_grad_reference(op, inputs, expected, output_to_grad,
                                                grad_reference, threshold)
                return outs
            finally:
                workspace.ResetWorkspace()

    def _assert_grad_reference(self, op, inputs, ref_outputs, output_to_grad,
                               grad_reference, threshold):
        grad_name = f"{output_to_grad}_grad"
        grad_ops, grad_map = core.GradientRegistry.GetBackwardPass([op],
                                                                   {output_to_grad: grad_name})
        output = workspace.FetchBlob(output_to_grad)
        expected = grad_reference(output, ref_outputs, inputs)
        workspace.FeedBlob(grad_name, output)
        workspace.RunOperatorsOnce(grad_ops)
        self.assertEqual(len(expected), len(inputs))
        for name, ref in zip(op.input, expected):
            grad = grad_map.get(name)
            if not grad:
                self.assertIsNone(ref)
                continue
            if isinstance(grad, core.GradientSlice):
                ref_values, ref_indices = ref
                _assert_close(workspace.FetchBlob(str(grad.indices)), ref_indices, 1e-4, 1e-4,
                              f"{op.type}: gradient indices of '{name}'")
                grad = grad.values
            else:
                ref_values = ref
            _assert_close(workspace.FetchBlob(str(grad)), ref_values, threshold, threshold,
                          f"{op.type}: gradient of '{name}' differs from grad_reference")

    def assertGradientChecks(self, device_option, op, inputs, outputs_to_check,  # noqa: N802
                             outputs_with_grads, grad_ops=None, threshold=0.005,
                             stepsize=0.05, input_device_options=None,
                             ensure_outputs_are_inferred=False):
        """The gradient of ``outputs_with_grads[0]`` with respect to input
        ``outputs_to_check``, from the registry's gradient ops, against finite
        differences of Caffe2's GradientChecker loss ``0.5 * sum(Y ** 2)``."""
        if grad_ops is not None:
            raise NotImplementedError("assertGradientChecks: custom grad_ops are not "
                                      "supported; the registry's are checked")
        outputs_with_grads = list(outputs_with_grads)
        if len(outputs_with_grads) != 1:
            raise NotImplementedError("assertGradientChecks: one output with a gradient")
        testing.check_gradient(op, inputs, outputs_to_check, outputs_with_grads[0],
                               stepsize=stepsize, threshold=threshold,
                               device_option=device_option, half_square_loss=True)

    def assertDeviceChecks(self, device_options, op, inputs, outputs_to_check,  # noqa: N802
                           input_device_options=None, threshold=0.01):
        """The op gives the same outputs (within ``threshold``) on every device."""
        results = [testing.run_op(op, inputs, option) for option in device_options]
        for option, outputs in zip(device_options[1:], results[1:]):
            for i in outputs_to_check:
                testing.assert_outputs_close(outputs[i], results[0][i],
                                 f"{op.type}: output {i} on device type "
                                 f"{option.device_type}", threshold, threshold)

    def assertValidationChecks(self, device_option, op, inputs, validator,  # noqa: N802
                               input_device_options=None, as_kwargs=True, init_net=None):
        """Feed the inputs, run ``init_net`` (if any) and the op in the current
        workspace, then ``validator`` on inputs and outputs (by blob name, or as
        ``inputs=`` and ``outputs=`` lists)."""
        op = _fed(op, device_option, inputs)
        if init_net is not None:
            workspace.RunNetOnce(init_net)
        workspace.RunOperatorOnce(op)
        outputs = [workspace.FetchBlob(name) for name in op.output]
        if as_kwargs:
            validator(**dict(zip(list(op.input) + list(op.output), list(inputs) + outputs)))
        else:
            validator(inputs=inputs, outputs=outputs)

    def assertRunOpRaises(self, device_option, op, inputs,  # noqa: N802
                          input_device_options=None, exception=(Exception,), regexp=None):
        """Running the op on the inputs (in the current workspace) raises ``exception``."""
        op = _fed(op, device_option, inputs)
        if regexp is None:
            self.assertRaises(exception, workspace.RunOperatorOnce, op)
        else:
            self.assertRaisesRegex(exception, regexp, workspace.RunOperatorOnce, op)


def _fed(op, device_option, inputs):
    """``op`` on ``device_option`` (a copy), its inputs fed to the current workspace."""
    op = testing.op_on_device(op, device_option)
    _feed(op, inputs)
    return op


def _feed(op, inputs, input_device_options=None):
    options = input_device_options or {}
    for name, value in zip(op.input, inputs):
        workspace.FeedBlob(name, value, options.get(name, op.device_option))


def _assert_close(actual, expected, atol, rtol, what):
    """Caffe2's comparison: strings and objects equal, numbers by assert_allclose."""
    actual = np.asarray(actual)
    if actual.dtype.kind in "SUO":
        np.testing.assert_array_equal(actual, expected, err_msg=what)
    else:
        np.testing.assert_allclose(actual, expected, atol=atol, rtol=rtol, err_msg=what)
