"""Caffe2's SingleGradientDef as data: a gradient op named by blob references.

Most of Caffe2's gradient makers build one op from the forward op's blobs,
written ``I(0)`` (input 0), ``O(0)`` (output 0), ``GO(0)`` (the gradient of
output 0) and ``GI(0)`` (the gradient of input 0).  ``single_gradient_def``
takes the same references as strings -- ``"I0"``, ``"O0"``, ``"GO0"``,
``"GI0"`` -- so a maker is one line of its schema instead of a function per op::

    gradient=single_gradient_def("DotProductGradient", ["I0", "I1", "GO0"], ["GI0", "GI1"])

The gradient op gets the forward op's arguments (the runtime copies them, as
Caffe2's GradientMakerBase did), plus any given here.
"""

from __future__ import annotations

from caffe2lite.runtime import dense_output_grad, grad_name, make_operator


def _blob(op_def, g_output, ref: str) -> str:
    if ref.startswith("GO"):
        return dense_output_grad(op_def, g_output, int(ref[2:]))
    if ref.startswith("GI"):
        return grad_name(op_def.input[int(ref[2:])])
    if ref[0] == "I":
        return op_def.input[int(ref[1:])]
    if ref[0] == "O":
        return op_def.output[int(ref[1:])]
    raise ValueError(f"unknown blob reference {ref!r} (expected I<n>, O<n>, GO<n> or GI<n>)")


def single_gradient_def(grad_type: str, inputs, outputs, **args):
    """A maker giving one ``grad_type`` op from ``inputs`` to ``outputs`` (references
    as in the module doc); the inputs named GI<n> in ``outputs`` get those gradients."""
    def maker(op_def, g_output):
        op = make_operator(grad_type, [_blob(op_def, g_output, r) for r in inputs],
                           [_blob(op_def, g_output, r) for r in outputs], **args)
        g_input = [None] * len(op_def.input)
        for ref in outputs:
            if ref.startswith("GI"):
                g_input[int(ref[2:])] = grad_name(op_def.input[int(ref[2:])])
        return [op], g_input
    maker.__name__ = f"{grad_type}_maker"
    return maker
