"""Cross-device copies: CopyCPUToGPU, CopyGPUToCPU, CopyFromCPUInput, EnsureCPUOutput.

As in Caffe2 (copy_op.cc/.cu, ensure_cpu_output_op.cc), under a CUDA
DeviceOption the op's device names the GPU.  Caffe2 had no CPU kernels for
the two GPU copies; here, under a CPU DeviceOption, they are plain host
copies (as CopyFromCPUInput is), so a GPU net whose device options were
switched to the CPU still runs on a machine without a GPU.  Their schemas
declare where each blob lives (``infer_device``), which is how the CUDA
path knows that a host input or output is right here and not a mistake.
(``Copy`` itself, GPU to GPU on CUDA, lives in its own module.)
"""

from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime import (NO_GRADIENT, GradientSlice, OpSchema, grad_name, make_operator,
                                register_kernel, register_schema, same_as, sparse_grad_names)
from caffe2lite.runtime.devices import is_device_array, key_name, location

_HOST = caffe2_pb2.DeviceOption()


def _op_device(op_def):
    return op_def.device_option if op_def.HasField("device_option") else _HOST


def _host_to_op_device(op_def):
    """Device inference: inputs on the host, outputs on the op's device."""
    return [_HOST] * len(op_def.input), [_op_device(op_def)] * len(op_def.output)


def _op_device_to_host(op_def):
    """Device inference: inputs on the op's device, outputs on the host."""
    return [_op_device(op_def)] * len(op_def.input), [_HOST] * len(op_def.output)


def _mirror_gradient(copy_type):
    """Gradient of a one-way copy: the opposite copy of the output's gradient,
    applied to indices and values separately when that gradient is sparse."""

    def maker(op_def, g_output):
        grad = g_output[0]
        x = op_def.input[0]
        if isinstance(grad, GradientSlice):
            gx = sparse_grad_names(x)
            ops = [make_operator(copy_type, [grad.indices], [gx.indices]),
                   make_operator(copy_type, [grad.values], [gx.values])]
            return ops, [gx]
        return [make_operator(copy_type, [grad], [grad_name(x)])], [grad_name(x)]

    maker.__name__ = f"copy_gradient_via_{copy_type}"
    return maker


register_schema(OpSchema(
    "CopyCPUToGPU", num_inputs=1, num_outputs=1,
    infer_shapes=same_as(0),
    inputs=[("input", "a CPU (NumPy) tensor")],
    outputs=[("output", "a copy of the input on the op's GPU")],
    doc="Copy a host tensor to the GPU named by the op's CUDA DeviceOption "
        "(cupy.asarray(numpy_array)); under a CPU DeviceOption, a host copy.",
    infer_device=_host_to_op_device, inputs_can_cross_devices=True,
    gradient=_mirror_gradient("CopyGPUToCPU")))

register_schema(OpSchema(
    "CopyGPUToCPU", num_inputs=1, num_outputs=1,
    infer_shapes=same_as(0),
    inputs=[("input", "a GPU (CuPy) tensor")],
    outputs=[("output", "a host (NumPy) copy of the input")],
    doc="Copy a GPU tensor to the host (cupy.asnumpy); under a CPU DeviceOption "
        "the input may also be a host tensor (numpy.copy).",
    infer_device=_op_device_to_host, inputs_can_cross_devices=True,
    gradient=_mirror_gradient("CopyCPUToGPU")))

register_schema(OpSchema(
    "CopyFromCPUInput", num_inputs=1, num_outputs=1,
    infer_shapes=same_as(0),
    inputs=[("input", "a CPU tensor")],
    outputs=[("output", "a copy of the input on the op's device (GPU or CPU)")],
    doc="Copy a host tensor to the op's own device: an upload under a CUDA "
        "DeviceOption, a plain copy (numpy.copy) on the CPU.",
    infer_device=_host_to_op_device, inputs_can_cross_devices=True))

register_schema(OpSchema(
    "EnsureCPUOutput", num_inputs=1, num_outputs=1,
    infer_shapes=same_as(0),
    inputs=[("input", "a CUDA or CPU tensor (only CPU under a CPU DeviceOption)")],
    outputs=[("output", "a host (NumPy) copy of the input")],
    doc="Always produce a host tensor: under a CUDA DeviceOption the input may be "
        "on the GPU or the host; on the CPU it must be on the host.",
    infer_device=_op_device_to_host, inputs_can_cross_devices=True,
    gradient=NO_GRADIENT))


def _require(ctx, value, on_gpu, expected):
    """Caffe2's Input(0, DEVICE) check: the copy's source must be where the op says."""
    if is_device_array(value) != on_gpu:
        found = location(value)
        ctx.fail(f"input 0 ('{ctx.op_def.input[0]}') must be a {expected} tensor, "
                 f"got {key_name(found) + ' array' if found else type(value).__name__}")


@register_kernel("CopyCPUToGPU", devices=("CPU", "CUDA"))
@register_kernel("CopyFromCPUInput", devices=("CPU", "CUDA"))
def copy_from_cpu_input(ctx, x):
    _require(ctx, x, False, "CPU (NumPy)")
    return (ctx.device.copy_to_device(x),)


@register_kernel("CopyGPUToCPU", devices=("CPU", "CUDA"))
def copy_gpu_to_cpu(ctx, x):
    if ctx.device.name != "CPU":
        _require(ctx, x, True, "GPU (CuPy)")
    return (ctx.device.to_host(x) if is_device_array(x) else x.copy(),)


@register_kernel("EnsureCPUOutput", devices=("CPU", "CUDA"))
def ensure_cpu_output(ctx, x):
    if ctx.device.name == "CPU":
        _require(ctx, x, False, "CPU (NumPy)")
        return (x.copy(),)
    return (ctx.device.to_host(x) if is_device_array(x) else x.copy(),)
