"""Einsum: numpy.einsum over the inputs (ONNX's Einsum; Caffe2 had none)."""

from caffe2lite.runtime import (INT_MAX, NO_GRADIENT, Arg, OpSchema, register_kernel,
                                register_schema)

NUMERIC = "iuf"


register_schema(OpSchema(
    "Einsum", num_inputs=(1, INT_MAX), num_outputs=1,
    inputs=[("Inputs", "numeric tensors of one dtype, one per operand of the equation")],
    outputs=[("Output", "numpy.einsum(equation, *Inputs)")],
    args=[Arg("equation", "string", None, "the subscripts, e.g. 'ij,jk->ik' (implicit output "
                                          "and '...' broadcasting as NumPy reads them)",
              required=True)],
    doc="Output = numpy.einsum(equation, *Inputs): Einstein summation.",
    gradient=NO_GRADIENT))


@register_kernel("Einsum", devices=("CPU", "CUDA"))
def einsum(ctx, *operands):
    dtypes = {getattr(x, "dtype", None) for x in operands}
    if len(dtypes) != 1 or None in dtypes or next(iter(dtypes)).kind not in NUMERIC:
        ctx.fail(f"the inputs must be numeric tensors of one dtype, got "
                 f"{', '.join(str(getattr(x, 'dtype', type(x).__name__)) for x in operands)}")
    equation = ctx.args["equation"].replace(" ", "")
    terms = equation.split("->")[0].split(",")
    if len(terms) != len(operands):
        ctx.fail(f"equation '{equation}' has {len(terms)} operand(s), {len(operands)} "
                 f"input(s) given")
    try:
        return (ctx.xp.asarray(ctx.xp.einsum(equation, *operands), dtype=operands[0].dtype),)
    except ValueError as e:
        ctx.fail(f"equation '{equation}' does not fit the inputs "
                 f"({', '.join(str(tuple(x.shape)) for x in operands)}): {e}")
