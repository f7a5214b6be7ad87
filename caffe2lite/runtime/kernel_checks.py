"""Checks the engine wraps around a kernel when asked, and only then.

``limit_outputs``: with a workspace ``max_tensor_bytes`` (``SetLimits``), no
operator may make an output larger than the limit.  Where the schema's shape
function gives the output's size from the inputs' shapes and the arguments, the
op is refused before its kernel runs (nothing is allocated); otherwise the
kernel's results are measured before anything is written.  An output written
over an input blob no larger than that input is no new allocation and passes
(an optimizer updating a table fed bigger than the limit).

``check_inputs_unchanged``: the debug mode of ``CAFFE2LITE_CHECK_KERNELS=1``
(``--caffe2lite_check_kernels``).  A kernel must not change an input that the
op does not declare in place (an output naming the same blob), and a kernel
that fails must not have changed any input at all; a copy of each input taken
before the call tells.  The inputs are put back before the error is raised.

``Operator`` wraps its kernel at creation, so an op without a limit and without
the debug mode runs the kernel as it is: the dispatch loop pays nothing.
"""

from __future__ import annotations

import numpy as np

from caffe2lite.runtime import int8_tensor
from caffe2lite.runtime.devices import is_device_array, to_host
from caffe2lite.runtime.errors import KernelContractError, LimitExceeded
from caffe2lite.runtime.op_context import input_label, output_label
from caffe2lite.runtime.safety import human_bytes
from caffe2lite.runtime.shape_inference import spec_of


def limit_outputs(kernel, op_def, schema, where: str, limit: int):
    """``kernel`` refusing, with LimitExceeded, any output over ``limit`` bytes.

    The shape function's verdict is remembered per input shapes and dtypes (all it
    can depend on, the arguments being the op's own), so a net that runs the same
    shapes again pays a dict lookup, not the inference."""
    infer = getattr(schema, "infer_shapes", None)
    outputs = list(op_def.output)
    in_place = {j: [i for i, name in enumerate(op_def.input) if name == out]
                for j, out in enumerate(outputs)}
    verdicts: dict = {}  # (shape, dtype) of each input -> over-limit outputs (or ())

    def oversized(j, nbytes, inputs) -> bool:
        # Not a new allocation: an output replacing an input at least as large.
        return nbytes > limit and not any(_nbytes(inputs[i]) >= nbytes for i in in_place[j])

    def refuse(j, shape, dtype, nbytes, before: bool):
        when = "would be" if before else "is"
        raise LimitExceeded(f"{where}: {output_label(op_def, schema, j)} {when} a tensor of "
                            f"shape {list(shape)} ({np.dtype(dtype).name}, "
                            f"{human_bytes(nbytes)}), over the workspace's max_tensor_bytes "
                            f"of {human_bytes(limit)}; nothing was written")

    def predicted(ctx, inputs) -> tuple:
        """(j, shape, dtype, bytes) of each output the shape function puts over the limit."""
        found = []
        for j, spec in enumerate(_inferred(infer, ctx, inputs)[:len(outputs)]):
            if spec is not None:
                nbytes = spec.size * spec.dtype.itemsize
                if oversized(j, nbytes, inputs):
                    found.append((j, spec.shape, spec.dtype, nbytes))
        return tuple(found)

    def limited(ctx, *inputs):
        if infer is not None:
            try:
                key = tuple([(x.shape, x.dtype) for x in inputs])
            except AttributeError:  # a string or opaque input: ask every time
                key = None
            over = verdicts.get(key) if key is not None else None
            if over is None:
                over = predicted(ctx, inputs)
                if key is not None and len(verdicts) < 256:
                    verdicts[key] = over
            if over:
                refuse(*over[0], before=True)
        results = kernel(ctx, *inputs)
        values = results if isinstance(results, (tuple, list)) else (results,)
        for j, value in enumerate(values[:len(outputs)]):
            nbytes = getattr(value, "nbytes", 0) or _nbytes(value)
            if nbytes > limit and oversized(j, nbytes, inputs):
                array = _array(value)
                refuse(j, array.shape, array.dtype, nbytes, before=False)
        return results

    return limited


def _inferred(infer, ctx, inputs) -> list:
    """The shape function's output specs, or none when it cannot tell (it raises on
    inputs the kernel will refuse with a message of its own).  A shape function may
    refuse a size itself, naming the argument it came from (the fillers): that
    LimitExceeded stands."""
    try:
        return list(infer(ctx, *[spec_of(x) for x in inputs]))
    except LimitExceeded:
        raise
    except Exception:  # noqa: BLE001 - the kernel reports what is wrong with the inputs
        return []


def _array(value):
    """The array behind a blob value (an Int8Tensor's data), or None."""
    if int8_tensor.is_int8(value):
        return value.data
    return value if hasattr(value, "dtype") and hasattr(value, "shape") else None


def _nbytes(value) -> int:
    array = _array(value)
    return int(array.nbytes) if array is not None else 0


def check_inputs_unchanged(kernel, op_def, schema, where: str):
    """``kernel`` failing with KernelContractError when it changes an input it must not."""
    outputs = set(op_def.output)
    declared = [name in outputs for name in op_def.input]

    def checked(ctx, *inputs):
        copies = [_copy(x) for x in inputs]
        try:
            results = kernel(ctx, *inputs)
        except Exception as exc:
            changed = _changed(inputs, copies, range(len(inputs)))
            if changed:
                raise KernelContractError(
                    f"{where}: the kernel changed {_labels(changed)} and then failed "
                    f"({type(exc).__name__}: {exc}); a failing op must leave every blob as it "
                    f"was (CAFFE2LITE_CHECK_KERNELS; the inputs were put back)") from exc
            raise
        changed = _changed(inputs, copies, [i for i in range(len(inputs)) if not declared[i]])
        if changed:
            raise KernelContractError(
                f"{where}: the kernel changed {_labels(changed)}, which the op does not "
                f"declare in place (CAFFE2LITE_CHECK_KERNELS; the inputs were put back)")
        return results

    def _labels(indices) -> str:
        return ", ".join(input_label(op_def, schema, i) for i in indices)

    return checked


def _copy(value):
    """A host copy of an array input, or of an Int8Tensor's data (None for anything else)."""
    value = _array(value)
    if is_device_array(value):
        return to_host(value)
    return value.copy() if isinstance(value, np.ndarray) else None


def _changed(inputs, copies, indices) -> list[int]:
    """The inputs among ``indices`` that differ from their copies; each is put back."""
    changed = []
    for i in indices:
        before, now = copies[i], _array(inputs[i])
        if before is None:
            continue
        host = to_host(now)
        if host.shape == before.shape and host.dtype == before.dtype and (
                host.tobytes() == before.tobytes() if before.dtype != object
                else np.array_equal(host, before)):
            continue
        changed.append(i)
        if now.shape == before.shape and now.dtype == before.dtype:
            put_back = getattr(now, "set", None) if is_device_array(now) else None
            if put_back is not None:
                put_back(before)  # CuPy: the host values copied into the same GPU array
            else:
                now[...] = before
    return changed
