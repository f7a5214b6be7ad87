"""DataCouple and AsyncNetBarrier: ops that compute nothing, for the scheduling they force.

``DataCouple`` (caffe2/operators/data_couple.*) takes any number of inputs and as many
or fewer outputs, each output in place on the input at its position: it changes
nothing, but makes the outputs look written and ties the inputs together in one
dependency.  ``AsyncNetBarrier`` (async_net_barrier_op.*) makes an async scheduler
start the ops producing its inputs before those that read its outputs; its
outputs may be in place (the usual use) or other blobs, which then receive the
inputs' values (Caffe2's CPU op left such outputs unwritten); ``cross_device``
places input i on device i in device inference.  Neither has a gradient
(DataCouple declares none, AsyncNetBarrier SHOULD_NOT_DO_GRADIENT).
"""

from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime import (SHOULD_NOT_DO_GRADIENT, Arg, OpSchema, register_kernel,
                                register_schema)

register_schema(OpSchema(
    "DataCouple", num_inputs=(0, None), num_outputs=(0, None),
    num_inputs_outputs=lambda n_in, n_out: n_out <= n_in, enforce_inplace="one_to_one",
    inputs=[("blobs", "any blobs")], outputs=[("blobs", "the first inputs, in place")],
    doc="A one to one operator that takes an arbitrary number of input and output blobs such "
        "that each input blob is inplace with it's matching output blob. It then proceedes to "
        "do nothing with each of these operators. This serves two purposes. It can make it "
        "appear as if a blob has been written to, as well as can tie together different blobs "
        "in a data dependency"))


@register_kernel("DataCouple", devices=("CPU", "CUDA"))
def data_couple(ctx, *blobs):
    return blobs[:len(ctx.op_def.output)]


def _barrier_devices(op_def):
    """Caffe2's asyncBarrierOpDevInfer: every blob on the op's device, or input/output i
    on device i of its type with cross_device = 1."""
    option = op_def.device_option if op_def.HasField("device_option") else \
        caffe2_pb2.DeviceOption()
    cross = any(a.name == "cross_device" and a.i == 1 for a in op_def.arg)
    options = []
    for i in range(len(op_def.input)):
        if cross:
            dev = caffe2_pb2.DeviceOption()
            dev.device_type = option.device_type
            dev.device_id = i
            options.append(dev)
        else:
            options.append(option)
    return options, options[:len(op_def.output)]


register_schema(OpSchema(
    "AsyncNetBarrier", num_inputs=(1, None), num_outputs=(1, None),
    num_inputs_outputs=lambda n_in, n_out: n_out <= n_in, allow_inplace="one_to_one",
    infer_shapes=lambda ctx, *inputs: inputs[:len(ctx.op_def.output)],
    inputs_can_cross_devices=True, infer_device=_barrier_devices,
    inputs=[("blobs", "the blobs whose producers must run first")],
    outputs=[("blobs", "the same values (normally in place)")],
    args=[Arg("cross_device", "int", 0, "Specifies either inputs should be across different "
                                        "devices in dev inference options")],
    doc="This is a pretty much no-op operator, since it's only purposes is make sure that "
        "async_scheduling will schedule certian operations earlier than others.",
    gradient=SHOULD_NOT_DO_GRADIENT))


@register_kernel("AsyncNetBarrier", devices=("CPU", "CUDA"))
def async_net_barrier(ctx, *blobs):
    op = ctx.op_def
    # a blob that is not in place gets its own copy: kernels never alias inputs to outputs
    return tuple(blob if op.output[j] == op.input[j] or not hasattr(blob, "copy")
                 else blob.copy() for j, blob in enumerate(blobs[:len(op.output)]))
