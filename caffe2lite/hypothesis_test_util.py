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

import contextlib
import functools
import logging
import os
import struct

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

from caffe2lite import core, gradient_checker, testing, workspace
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


def to_float32(x):
    """``x`` rounded to the nearest float32, as a Python float."""
    return struct.unpack("f", struct.pack("f", float(x)))[0]


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
    """int32 lengths of segments that add up to ``size`` (some may be 0)."""
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


def segmented_tensor(min_dim=1, max_dim=4, dtype=np.float32, is_sorted=True, elements=None,
                     segment_generator=segment_ids, allow_empty=False, **kwargs):
    """(data, segments): a tensor and a segmentation of its rows made by
    ``segment_generator(rows, is_sorted=...)`` (sorted segment ids by default).  With
    ``allow_empty`` the data may also have 0 rows (a leading dimension of 0)."""
    gen_empty = st.booleans() if allow_empty else st.just(False)
    data_dims = st.tuples(gen_empty, st.lists(dims(**kwargs), min_size=min_dim,
                                              max_size=max_dim)).map(
        lambda pair: ([0] if pair[0] else []) + pair[1])
    return data_dims.flatmap(lambda shape: st.tuples(
        arrays(shape, dtype, elements), segment_generator(shape[0], is_sorted=is_sorted)))


def lengths_tensor(min_segments=None, max_segments=None, *args, **kwargs):
    """(data, lengths): a tensor and int32 lengths of segments covering its rows."""
    gen = functools.partial(lengths, min_segments=min_segments, max_segments=max_segments)
    return segmented_tensor(*args, segment_generator=gen, **kwargs)


def sparse_segmented_tensor(min_dim=1, max_dim=4, dtype=np.float32, is_sorted=True,
                            elements=None, allow_empty=False, segment_generator=segment_ids,
                            itype=np.int64, **kwargs):
    """(data, indices, segments): a tensor, ``itype`` indices of its rows (as many as
    one to its row count, or none with ``allow_empty``) and a segmentation of the
    indices."""
    gen_empty = st.booleans() if allow_empty else st.just(False)
    data_dims = st.lists(dims(**kwargs), min_size=min_dim, max_size=max_dim)
    all_dims = st.tuples(gen_empty, data_dims).flatmap(lambda pair: st.tuples(
        st.just(pair[1]),
        st.just(0) if pair[0] else st.integers(min_value=1, max_value=pair[1][0])))
    return all_dims.flatmap(lambda shapes: st.tuples(
        arrays(shapes[0], dtype, elements),
        arrays(shapes[1], dtype=itype,
               elements=st.integers(min_value=0, max_value=shapes[0][0] - 1)),
        segment_generator(shapes[1], is_sorted=is_sorted)))


def sparse_lengths_tensor(**kwargs):
    """(data, indices, lengths): sparse_segmented_tensor segmented by lengths."""
    return sparse_segmented_tensor(segment_generator=lengths, **kwargs)


def device_checker_device_options():
    return st.just(device_options)


def gradient_checker_device_option():
    return st.sampled_from(device_options)


@contextlib.contextmanager
def temp_workspace(name=b"temp_ws"):
    """Run the block in workspace ``name`` (created, and emptied after), then switch back."""
    name = name.decode() if isinstance(name, bytes) else name
    old = workspace.CurrentWorkspace()
    workspace.SwitchWorkspace(name, True)
    try:
        yield
    finally:
        workspace.ResetWorkspace()
        workspace.SwitchWorkspace(old)


def _placed(op, device_option, inputs=None):
    """A copy of ``op`` on ``device_option``; with ``inputs``, checked to cover its inputs."""
    if inputs is not None and len(op.input) > len(inputs):
        raise ValueError(f"must supply an input for each input on the op: {op.input} vs "
                         f"{inputs}")
    return testing.op_on_device(op, device_option)


def _feed_inputs(op, inputs, input_device_options, device_option):
    options = input_device_options or core.InferOpBlobDevicesAsDict(op)[0]
    for name, value in zip(op.input, inputs):
        workspace.FeedBlob(name, value, device_option=options.get(name, device_option))


def runOpBenchmark(device_option, op, inputs, input_device_options=None,  # noqa: N802
                   iterations=10):
    """BenchmarkNet of a net holding only ``op`` (on ``device_option``) in a temporary
    workspace: [ms per run, ms of the op]."""
    op = _placed(op, device_option)
    net = caffe2_pb2.NetDef(name=op.name or "test")
    net.op.extend([op])
    with temp_workspace():
        _feed_inputs(op, inputs, input_device_options, device_option)
        workspace.CreateNet(net)
        return workspace.BenchmarkNet(net.name, 1, iterations, True)


def runOpOnInput(device_option, op, inputs, input_device_options=None):  # noqa: N802
    """The outputs of ``op`` run once on ``inputs`` in a temporary workspace."""
    op = _placed(op, device_option, inputs)
    with temp_workspace():
        _feed_inputs(op, inputs, input_device_options, device_option)
        workspace.RunOperatorOnce(op)
        return [workspace.FetchBlob(name) for name in op.output]


class HypothesisTestCase(TestCase):
    """Caffe2's operator-test base class: each check raises AssertionError on failure.

    Every check runs in a temporary workspace (``temp_workspace``) with the inputs fed
    on their devices (``input_device_options``, else the op's device inference)."""

    def assertReferenceChecks(self, device_option, op, inputs, reference,  # noqa: N802
                              input_device_options=None, threshold=1e-4, output_to_grad=None,
                              grad_reference=None, atol=None, outputs_to_check=None,
                              ensure_outputs_are_inferred=False):
        """Run ``op`` on ``inputs`` and compare its outputs (those at
        ``outputs_to_check``, default all) with ``reference(*inputs)`` within ``threshold``
        relative and ``atol`` (default ``threshold``) absolute; strings exactly.  Shape
        inference is checked against the outputs as Caffe2 did: a mismatch is logged, or
        raised with ``ensure_outputs_are_inferred`` (or CAFFE2_ASSERT_SHAPEINFERENCE=1).
        With ``grad_reference``, the gradient ops of ``output_to_grad`` (fed the output
        itself as its gradient) are compared with ``grad_reference(output,
        reference_outputs, inputs)``.  Returns the op's outputs."""
        op = _placed(op, device_option, inputs)
        with temp_workspace():
            _feed_inputs(op, inputs, input_device_options, device_option)
            net = core.Net("opnet")
            net.Proto().op.extend([op])
            shapes = types = None
            try:
                shapes, types = workspace.InferShapesAndTypes([net])
            except RuntimeError as e:
                logging.warning(str(e))
                if _assert_shapes() or ensure_outputs_are_inferred:
                    raise
            workspace.RunNetOnce(net)
            expected = reference(*inputs)
            if not isinstance(expected, (tuple, list)):
                raise RuntimeError("You are providing a wrong reference implementation. A "
                                   "proper one should return a tuple/list of numpy arrays.")
            if not outputs_to_check:
                self.assertEqual(len(expected), len(op.output))
                outputs_to_check = list(range(len(op.output)))
            outs = []
            for index, ref in zip(outputs_to_check, expected):
                name = op.output[index]
                output = workspace.FetchBlob(name)
                _assert_close(output, ref, threshold if atol is None else atol, threshold,
                              f"Output {name} is not matching the reference")
                if shapes is not None:
                    self._assertInferTensorChecks(name, shapes, types, output,
                                                  ensure_outputs_are_inferred)
                outs.append(output)
            if grad_reference is not None:
                assert output_to_grad is not None, \
                    "If grad_reference is set, output_to_grad has to be set as well"
                with core.DeviceScope(device_option):
                    self._assertGradReferenceChecks(op, inputs, expected, output_to_grad,
                                                    grad_reference, threshold)
            return outs

    def _assertInferTensorChecks(self, name, shapes, types, output,  # noqa: N802
                                 ensure_output_is_inferred=False):
        """The inferred shape (and, for int32 outputs, type) of ``name`` is the real one."""
        self.assertTrue(not ensure_output_is_inferred or name in shapes,
                        f"Shape for {name} was not inferred")
        if name not in shapes:
            return
        try:
            np.testing.assert_array_equal(
                np.array(shapes[name]).astype(np.int32), np.array(np.shape(output)).astype(
                    np.int32), err_msg=f"Shape {name} mismatch: {shapes[name]} vs. "
                                       f"{np.shape(output)}")
            correct = gradient_checker.tensor_type(output)
            # Caffe2 compared types only for int32 outputs (its blob types were unreliable).
            if correct == caffe2_pb2.TensorProto.INT32:
                np.testing.assert_equal(types[name], correct,
                                        err_msg=f"Type {name} mismatch: {types[name]} vs. "
                                                f"{correct}")
        except AssertionError as e:
            logging.warning(str(e))
            if _assert_shapes() or ensure_output_is_inferred:
                raise

    def _assertGradReferenceChecks(self, op, inputs, ref_outputs, output_to_grad,  # noqa: N802
                                   grad_reference, threshold=1e-4):
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
                          f"Gradient {grad} (x) is not matching the reference (y)")

    def assertGradientChecks(self, device_option, op, inputs, outputs_to_check,  # noqa: N802
                             outputs_with_grads, grad_ops=None, threshold=0.005,
                             stepsize=0.05, input_device_options=None,
                             ensure_outputs_are_inferred=False):
        """The gradient of Caffe2's loss ``0.5 * sum(Y ** 2)`` over
        ``outputs_with_grads`` with respect to input ``outputs_to_check``, from the
        registry's gradient ops (or ``grad_ops``), against finite differences
        (caffe2lite.gradient_checker.GradientChecker.CheckSimple)."""
        checker = gradient_checker.GradientChecker(
            stepsize=stepsize, threshold=threshold, device_option=device_option,
            workspace_name=str(device_option), input_device_options=input_device_options)
        passed, grad, estimate = checker.CheckSimple(
            op, inputs, outputs_to_check, outputs_with_grads, grad_ops=grad_ops,
            input_device_options=input_device_options,
            ensure_outputs_are_inferred=ensure_outputs_are_inferred)
        self.assertEqual(grad.shape, estimate.shape)
        self.assertTrue(passed, f"Gradient check failed for input {op.input[outputs_to_check]}")

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
        """Feed the inputs, run ``init_net`` (if any) and the op in a temporary workspace,
        then ``validator`` on inputs and outputs (by blob name, or as ``inputs=`` and
        ``outputs=`` lists)."""
        if as_kwargs:
            assert len(set(op.input) | set(op.output)) == len(op.input) + len(op.output), \
                "in-place ops are not supported in as_kwargs mode"
        op = _placed(op, device_option)
        with temp_workspace():
            _feed_inputs(op, inputs, input_device_options, device_option)
            if init_net:
                workspace.RunNetOnce(init_net)
            workspace.RunOperatorOnce(op)
            outputs = [workspace.FetchBlob(name) for name in op.output]
            if as_kwargs:
                validator(**dict(zip(list(op.input) + list(op.output),
                                     list(inputs) + outputs)))
            else:
                validator(inputs=inputs, outputs=outputs)

    def assertRunOpRaises(self, device_option, op, inputs,  # noqa: N802
                          input_device_options=None, exception=(Exception,), regexp=None):
        """Running the op on the inputs (in a temporary workspace) raises ``exception``."""
        op = _placed(op, device_option)
        with temp_workspace():
            _feed_inputs(op, inputs, input_device_options, device_option)
            if regexp is None:
                self.assertRaises(exception, workspace.RunOperatorOnce, op)
            else:
                self.assertRaisesRegex(exception, regexp, workspace.RunOperatorOnce, op)


def _assert_shapes() -> bool:
    return os.getenv("CAFFE2_ASSERT_SHAPEINFERENCE") == "1"


def _assert_close(actual, expected, atol, rtol, what):
    """Caffe2's comparison: strings and objects equal, numbers by assert_allclose."""
    actual = np.asarray(actual)
    if actual.dtype.kind in "SUO":
        np.testing.assert_array_equal(actual, expected, err_msg=what)
    else:
        np.testing.assert_allclose(actual, expected, atol=atol, rtol=rtol, err_msg=what)
