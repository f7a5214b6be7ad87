"""Caffe2's SingleGradientDef as data: a gradient op named by blob references.

Most of Caffe2's gradient makers build one op from the forward op's blobs,
written ``I(0)`` (input 0), ``O(0)`` (output 0), ``GO(0)`` (the gradient of
output 0) and ``GI(0)`` (the gradient of input 0).  ``single_gradient_def``
takes the same references as strings -- ``"I0"``, ``"O0"``, ``"GO0"``,
``"GI0"`` -- so a maker is one line of its schema instead of a function per op::

    gradient=single_gradient_def("DotProductGradient", ["I0", "I1", "GO0"], ["GI0", "GI1"])

The gradient op gets the forward op's arguments (the runtime copies them, as
Caffe2's GradientMakerBase did), plus any given here.  With
``zeros_for_missing=True`` an output that received no gradient (a net that uses
only one of Moments' two outputs) gets a zero gradient, the output scaled by 0,
instead of the error Caffe2's GO() raised.
"""

from __future__ import annotations

from caffe2lite.runtime import dense_output_grad, grad_name, gradient_maker, make_operator


def _blob(op_def, g_output, ref: str, zeros: list | None = None) -> str:
    if ref.startswith("GO"):
        i = int(ref[2:])
        g = dense_output_grad(op_def, g_output, i, optional=zeros is not None)
        if g is None:
            g = f"{op_def.output[i]}_grad_zeros"
            zeros.append(make_operator("Scale", [op_def.output[i]], [g], scale=0.0))
        return g
    if ref.startswith("GI"):
        return grad_name(op_def.input[int(ref[2:])])
    if ref[0] == "I":
        return op_def.input[int(ref[1:])]
    if ref[0] == "O":
        return op_def.output[int(ref[1:])]
    raise ValueError(f"unknown blob reference {ref!r} (expected I<n>, O<n>, GO<n> or GI<n>)")


def single_gradient_def(grad_type: str, inputs, outputs, zeros_for_missing=False, **args):
    """A maker giving one ``grad_type`` op from ``inputs`` to ``outputs`` (references
    as in the module doc); the inputs named GI<n> in ``outputs`` get those gradients."""
    def maker(op_def, g_output):
        zeros = [] if zeros_for_missing else None
        op = make_operator(grad_type, [_blob(op_def, g_output, r, zeros) for r in inputs],
                           [_blob(op_def, g_output, r) for r in outputs], **args)
        if zeros_for_missing:  # the forward arguments go to the gradient op only
            have = {a.name for a in op.arg}
            op.arg.extend(a for a in op_def.arg if a.name not in have)
        g_input = [None] * len(op_def.input)
        for ref in outputs:
            if ref.startswith("GI"):
                g_input[int(ref[2:])] = grad_name(op_def.input[int(ref[2:])])
        return (zeros or []) + [op], g_input
    maker.__name__ = f"{grad_type}_maker"
    return gradient_maker(copy_arguments=False)(maker) if zeros_for_missing else maker
