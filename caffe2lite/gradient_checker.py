"""Caffe2's ``caffe2.python.gradient_checker``: numerical checks of gradient operators.

``GradientChecker(stepsize, threshold, ...).CheckSimple(op, inputs, input_to_check,
outputs_with_grads)`` stacks Caffe2's loss on the op -- ``0.5 * sum(Y ** 2)`` over the
outputs in ``outputs_with_grads``, each fed ``Y`` itself as its gradient -- runs the
op's gradient operators (from the registry, or ``grad_ops``) and compares the gradient
of input ``input_to_check`` with central differences.  Like Caffe2 it perturbs only the
first and last three elements (the others take the analytic value) unless the
environment sets ``CAFFE2_FULL_GRAD_CHECK=1``, and returns ``(passed, grad,
grad_estimate)`` rather than raising.  An input that is not a float tensor has no
gradient to check: the check passes with empty arrays, as Caffe2's tests treated
integer inputs (lengths, indices) as not differentiable.

``NetGradientChecker.CompareNets`` runs several nets' backward passes and compares
their outputs and gradients; ``NetGradientChecker.Check`` checks one net's gradient
of one input against central differences of the sum of ``outputs_with_grad``.

Everything runs in the current caffe2lite workspace (``GradientChecker`` switches to
its own, named ``workspace_name``, and empties it when done), as Caffe2's did.
"""

from __future__ import annotations

import os

import numpy as np

from caffe2lite import core, workspace
from caffe2lite.proto import caffe2_pb2

# Caffe2 checks only the first and last few elements of each input by default.
CHECKED_AT_EACH_END = 3


def getGradientForOp(op):  # noqa: N802 - Caffe2's name
    """(grad_ops, g_input) for ``op`` with every output's gradient named ``<out>_grad``."""
    return core.GradientRegistry.GetGradientForOp(op, [s + "_grad" for s in op.output])


def _dense_gradient(grad_map, input_to_check):
    """The gradient of ``input_to_check`` as a dense array (a GradientSlice is
    scattered into zeros shaped like the input, through SparseToDense as in Caffe2)."""
    grad_blob = grad_map[input_to_check]
    if not isinstance(grad_blob, core.GradientSlice):
        return workspace.FetchBlob(str(grad_blob))
    dense = "tmp_dense_grad"
    workspace.RunOperatorOnce(core.CreateOperator(
        "SparseToDense", [grad_blob.indices, grad_blob.values, input_to_check], dense))
    return workspace.FetchBlob(dense)


def _get_grad(net, outputs, outputs_with_grad, input_values, inputs_with_grads):
    grad_net = net.Clone(net.Name() + "_copy")
    grad_map = grad_net.AddGradientOperators(outputs_with_grad)
    for name, value in (input_values or {}).items():
        workspace.FeedBlob(name, value)
    for blob in inputs_with_grads:
        assert blob in grad_map, f"{blob} has no gradient, cannot check net gradient."
        assert workspace.HasBlob(str(blob)), f"{blob} is not in the workspace"
    workspace.RunNetOnce(grad_net)
    forward = [(output, workspace.FetchBlob(str(output))) for output in outputs]
    grads = {blob: _dense_gradient(grad_map, blob) for blob in inputs_with_grads}
    return forward, grads, grad_net


def _assert_close(value1, value2, threshold, err_msg=""):
    """assert_allclose within ``threshold`` (absolute and relative); returns the mean and
    the largest absolute difference."""
    np.testing.assert_allclose(value1, value2, atol=threshold, rtol=threshold,
                               err_msg=err_msg)
    delta = np.abs(np.asarray(value1, dtype=np.float64) - value2).ravel()
    return (float(np.mean(delta)), float(delta.max())) if delta.size else (0.0, 0.0)


class NetGradientChecker:
    @staticmethod
    def CompareNets(nets, outputs, outputs_with_grad_ids, inputs_with_grads,  # noqa: N802
                    input_values=None, threshold=0.0000001, print_net_images=False):
        """Nets that should compute the same thing give the same ``outputs`` (one list per
        net) and the same gradients of ``inputs_with_grads``, the loss being the outputs
        at ``outputs_with_grad_ids``.  ``print_net_images`` (Caffe2 drew the nets with
        pydot) is accepted and ignored."""
        results = [_get_grad(net, net_outputs, [net_outputs[i] for i in outputs_with_grad_ids],
                             input_values, inputs_with_grads)
                   for net, net_outputs in zip(nets, outputs)]
        first_results, first_grads, _ = results[0]
        for net_results, net_grads, _ in results[1:]:
            assert len(net_results) == len(first_results)
            for idx, ((blob1, value1), (blob2, value2)) in enumerate(
                    zip(first_results, net_results)):
                _assert_close(value1, value2, threshold,
                              f"Different forward pass results for output id {idx}. "
                              f"Corresponding output blobs: {blob1} and {blob2}")
            assert net_grads.keys() == first_grads.keys()
            for blob, value in net_grads.items():
                _assert_close(first_grads[blob], value, threshold,
                              f"Different gradients for input {blob}")

    @staticmethod
    def Check(net, outputs_with_grad, input_values, input_to_check,  # noqa: N802
              step_size=0.0001, threshold=0.05, print_net=True):
        """The gradient of ``sum(sum(outputs_with_grad))`` with respect to
        ``input_to_check``, from the net's backward pass, against central differences
        over every element; returns (mean, max) absolute difference."""
        _, grads, full_net = _get_grad(net, [], outputs_with_grad, input_values,
                                       [input_to_check])
        analytic = grads[input_to_check]
        base = input_values[input_to_check]

        def loss(value):
            workspace.FeedBlob(str(input_to_check), value)
            workspace.RunNetOnce(full_net)
            return sum(workspace.FetchBlob(str(o)).sum() for o in outputs_with_grad)

        estimate = np.zeros_like(base)
        for k in range(base.size):
            plus, minus = base.copy(), base.copy()
            plus.flat[k] += step_size
            minus.flat[k] -= step_size
            estimate.flat[k] = (loss(plus) - loss(minus)) / step_size / 2
        message = f"Error in gradient check for net_copy {net.Name()}"
        if print_net:
            message += f": {net.Proto()}"
        return _assert_close(analytic, estimate, threshold, message)


class GradientChecker:
    """Caffe2's numerical gradient checker for one operator (see the module doc)."""

    def __init__(self, stepsize, threshold, device_option=None,
                 workspace_name="gradient_check", input_device_options=None):
        self._stepsize = stepsize
        self._threshold = threshold
        self._device_option = device_option or caffe2_pb2.DeviceOption()
        self._workspace_name = workspace_name
        self._input_device_options = input_device_options or {}

    def _feed(self, name, value, options=None):
        options = self._input_device_options if options is None else options
        workspace.FeedBlob(name, value, options.get(name, self._device_option))

    def GetLossAndGrad(self, op, grad_ops, inputs, input_names, input_to_check,  # noqa: N802
                       grad_name, outputs_with_grads):
        """(0.5 * sum of Y**2 over outputs_with_grads, the dense gradient of the checked
        input) for ``inputs``, each Y fed back as its own gradient."""
        for name, value in zip(input_names, inputs):
            self._feed(name, value)
        workspace.RunOperatorOnce(op)
        loss = 0.0
        for idx in outputs_with_grads:
            name = op.output[idx]
            value = workspace.FetchBlob(name)
            loss += float((np.asarray(value, dtype=np.float64) ** 2).sum())
            workspace.FeedBlob(name + "_grad", value, self._device_option)
        workspace.RunOperatorsOnce(grad_ops)
        if isinstance(grad_name, core.GradientSlice):
            x = inputs[input_to_check]
            indices = workspace.FetchBlob(str(grad_name.indices)).reshape(-1)
            values = workspace.FetchBlob(str(grad_name.values))
            grad = np.zeros_like(x, dtype=np.float32)
            np.add.at(grad, indices, values.reshape((indices.size,) + x.shape[1:]))
        else:
            grad = workspace.FetchBlob(str(grad_name))
        return loss / 2.0, grad

    def CheckSimple(self, op, inputs, input_to_check, outputs_with_grads,  # noqa: N802
                    grad_ops=None, input_device_options=None,
                    ensure_outputs_are_inferred=False):
        """(passed, grad, grad_estimate) for input ``input_to_check`` of ``op``."""
        x = np.asarray(inputs[input_to_check])
        if x.dtype.kind != "f":  # no gradient to check (lengths, indices, masks)
            return True, np.zeros(0), np.zeros(0)
        old_ws = workspace.CurrentWorkspace()
        if self._workspace_name != old_ws:
            workspace.SwitchWorkspace(self._workspace_name, True)
        try:
            return self._check(op, list(inputs), input_to_check, outputs_with_grads,
                               grad_ops, input_device_options, ensure_outputs_are_inferred)
        finally:
            if self._workspace_name != old_ws:
                workspace.ResetWorkspace()
                workspace.SwitchWorkspace(old_ws)

    def _check(self, op, inputs, input_to_check, outputs_with_grads, grad_ops,
               input_device_options, ensure_outputs_are_inferred):
        op.device_option.CopyFrom(self._device_option)
        registry_ops, g_input = getGradientForOp(op)
        grad_ops = registry_ops if grad_ops is None else grad_ops
        options = input_device_options or self._input_device_options
        for name, value in zip(op.input, inputs):
            self._feed(name, value, options)
        grad_name = g_input[input_to_check]
        if grad_name is None:
            raise AssertionError(f"{op.type}: the gradient maker gives input "
                                 f"{input_to_check} ('{op.input[input_to_check]}') no gradient")
        inputs[input_to_check] = np.array(inputs[input_to_check], copy=True)
        x = inputs[input_to_check]
        _, grad = self.GetLossAndGrad(op, grad_ops, inputs, op.input, input_to_check,
                                      grad_name, outputs_with_grads)
        grad = np.asarray(grad)
        if grad.shape != x.shape:
            raise Exception(f"Mismatched gradient shapes: estimated ({x.shape}), "
                            f"grad ({grad.shape})")
        if ensure_outputs_are_inferred:
            self._assertInferTensorChecks(op, grad_ops)
        full = os.getenv("CAFFE2_FULL_GRAD_CHECK") == "1"
        estimate = np.zeros_like(x)
        for k in range(x.size):
            if not full and CHECKED_AT_EACH_END <= k < x.size - CHECKED_AT_EACH_END:
                estimate.flat[k] = grad.flat[k]
                continue
            original = x.flat[k]
            x.flat[k] = original + self._stepsize
            pos, _ = self.GetLossAndGrad(op, grad_ops, inputs, op.input, input_to_check,
                                         grad_name, outputs_with_grads)
            x.flat[k] = original - self._stepsize
            neg, _ = self.GetLossAndGrad(op, grad_ops, inputs, op.input, input_to_check,
                                         grad_name, outputs_with_grads)
            x.flat[k] = original
            estimate.flat[k] = (pos - neg) / self._stepsize / 2
        failed = ~np.isclose(grad, estimate, atol=self._threshold, rtol=self._threshold)
        if np.any(failed):
            idx = np.flatnonzero(failed)
            print("Failed. [idx, grad, grad_estimate] are:")
            print(np.vstack([idx, grad.flat[idx], estimate.flat[idx]]).T)
        return not np.any(failed), grad, estimate

    def _assertInferTensorChecks(self, op, grad_ops):  # noqa: N802
        """Shape inference knows every gradient output, with the shape and type it has."""
        net = caffe2_pb2.NetDef()
        net.op.extend([op])
        net.op.extend(grad_ops)
        shapes, types = workspace.InferShapesAndTypes([net], nets_proto=True)
        for output in {o for grad_op in grad_ops for o in grad_op.output}:
            if output not in shapes:
                raise Exception(f"expected output {output} to be inferred")
            blob = workspace.FetchBlob(output)
            if list(np.shape(blob)) != list(shapes[output]):
                raise Exception(f"Mismatched inferred shape: want({list(np.shape(blob))}), "
                                f"got({list(shapes[output])})")
            expected = tensor_type(blob)
            if expected != types[output]:
                raise Exception(f"Mismatched inferred type: want({expected}), "
                                f"got({types[output]})")


_TYPES = {np.dtype(np.float64): caffe2_pb2.TensorProto.DOUBLE,
          np.dtype(np.float32): caffe2_pb2.TensorProto.FLOAT,
          np.dtype(np.int32): caffe2_pb2.TensorProto.INT32,
          np.dtype(np.int64): caffe2_pb2.TensorProto.INT64}


def tensor_type(value):
    """The TensorProto data type Caffe2's checks expected for a fetched blob."""
    if isinstance(value, np.ndarray):
        return _TYPES.get(value.dtype, f"unknown {value.dtype}")
    return str(type(value))
