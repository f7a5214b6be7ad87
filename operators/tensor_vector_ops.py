"""Tensor vectors: CreateTensorVector, TensorVectorSize, ConcatTensorVector, CollectTensor.

A tensor-vector blob holds a Python list of tensors (Caffe2's
``std::unique_ptr<std::vector<Tensor>>``).  CollectTensor keeps a uniform
sample of at most ``num_to_collect`` of the tensors it is given over its runs
(reservoir sampling: run k keeps its tensor with probability num_to_collect / k,
replacing a random kept one), all-or-none across its vectors, so the i-th
entries of every vector come from the same run; ConcatTensorVector stacks a
vector's tensors along their first dimension.
"""

import numpy as np

from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, once_per_op,
                                register_kernel, register_schema)


class TensorVector(list):
    """The list a tensor-vector blob holds (a type of its own, so ops can check it)."""


def _vector(ctx, value, i):
    if not isinstance(value, TensorVector):
        ctx.fail(f"{ctx.input_label(i)} must hold a tensor vector (made by "
                 f"CreateTensorVector), got {type(value).__name__}")
    return value


register_schema(OpSchema(
    "CreateTensorVector", num_inputs=0, num_outputs=1,
    outputs=[("tensor vector", "a new, empty tensor vector")],
    doc="Create a std::unique_ptr<std::vector<Tensor> >", gradient=SHOULD_NOT_DO_GRADIENT,
    opaque_outputs=True))


@register_kernel("CreateTensorVector", devices=("CPU", "CUDA"))
def create_tensor_vector(ctx):
    return (TensorVector(),)


register_schema(OpSchema(
    "TensorVectorSize", num_inputs=1, num_outputs=1,
    inputs=[("tensor vector", "std::unique_ptr<std::vector<Tensor> >")],
    outputs=[("size", "int32_t size")],
    doc="Get the size of the input vector (an int32 scalar).",
    gradient=SHOULD_NOT_DO_GRADIENT))


@register_kernel("TensorVectorSize", devices=("CPU", "CUDA"))
def tensor_vector_size(ctx, vector):
    return (np.array(len(_vector(ctx, vector, 0)), np.int32),)


register_schema(OpSchema(
    "ConcatTensorVector", num_inputs=1, num_outputs=1,
    inputs=[("vector of Tensor", "std::unique_ptr<std::vector<Tensor> >")],
    outputs=[("tensor", "tensor after concatenating")],
    doc="Concat Tensors in the std::unique_ptr<std::vector<Tensor> > along the first "
        "dimension (np.concatenate).",
    gradient=SHOULD_NOT_DO_GRADIENT))


@register_kernel("ConcatTensorVector", devices=("CPU", "CUDA"))
def concat_tensor_vector(ctx, vector):
    vector = _vector(ctx, vector, 0)
    if not vector:
        ctx.fail("the tensor vector is empty: nothing to concatenate")
    first = vector[0]
    if first.ndim == 0:
        ctx.fail("the tensor vector holds 0-d tensors: nothing to concatenate along")
    for k, t in enumerate(vector):
        if t.ndim != first.ndim or t.shape[1:] != first.shape[1:] or t.dtype != first.dtype:
            ctx.fail(f"tensor {k} is {t.dtype}{list(t.shape)}, tensor 0 is "
                     f"{first.dtype}{list(first.shape)}: the shapes must agree but for the "
                     f"first dimension, and the types")
    return (ctx.xp.concatenate(vector),)


register_schema(OpSchema(
    "CollectTensor", num_inputs=lambda n: n > 0 and n % 2 == 0, num_outputs=(1, None),
    num_inputs_outputs=lambda n_in, n_out: n_in == 2 * n_out,
    enforce_inplace=lambda i, j: i == j,
    args=[Arg("num_to_collect", "int", -1, "The max number of tensors to collect")],
    inputs=[("tensor vectors", "the vectors (also the outputs)"),
            ("tensors", "the tensors to collect, one per vector")],
    outputs=[("tensor vectors", "the vectors, in place")],
    doc="Collect tensor into tensor vector by reservoir sampling, argument num_to_collect "
        "indicates the max number of tensors that will be collected. The input tensors are "
        "collected in all-or-none manner: if they are collected, they will be placed at the "
        "same index in the output vectors.",
    gradient=SHOULD_NOT_DO_GRADIENT, opaque_outputs=True))


@once_per_op
def _visits(ctx):
    return {"visited": 0}  # Caffe2 kept this count in the operator


@register_kernel("CollectTensor", devices=("CPU", "CUDA"))
def collect_tensor(ctx, *inputs):
    n = len(ctx.op_def.output)
    to_collect = ctx.args["num_to_collect"]
    ctx.enforce(to_collect > 0, f"num_to_collect must be > 0, got {to_collect}")
    vectors = [_vector(ctx, inputs[i], i) for i in range(n)]
    state = _visits(ctx)
    visited = state["visited"]
    for i, vector in enumerate(vectors):
        if visited >= to_collect and len(vector) != to_collect:
            ctx.fail(f"TensorVector size = {len(vector)} is different from numToCollect = "
                     f"{to_collect}")
        if not hasattr(inputs[n + i], "shape"):
            ctx.fail(f"{ctx.input_label(n + i)} must be a tensor")
    if visited < to_collect:
        pos = visited
    else:
        pos = int(ctx.rng.integers(0, visited + 1))  # uniform in [0, visited]
        pos = pos if pos < to_collect else -1
    for vector, tensor in zip(vectors, inputs[n:]):  # checked: nothing below can fail
        if pos >= len(vector):
            vector.append(tensor.copy())
        elif pos >= 0:
            vector[pos] = tensor.copy()
    state["visited"] = visited + 1
    return tuple(vectors)
