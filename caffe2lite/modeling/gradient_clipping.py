"""Caffe2's GradientClipping: clip the dense gradients of a grad map in the net.

``by_norm``: ``ClipTensorByScaling(grad, ||grad||_p[, ||param||_p], threshold)``
scales a gradient down to ``clip_threshold`` (times the parameter's norm with
``use_parameter_norm``) when its L1 or L2 norm is above it; ``by_value``:
``Clip(grad, min=clip_min, max=clip_max)``.  Sparse gradients are left alone,
as in Caffe2.
"""

import logging

from caffe2lite import core
from caffe2lite.modeling.net_modifier import NetModifier
from caffe2lite.optimizer import get_param_device
from caffe2lite.proto import caffe2_pb2

logger = logging.getLogger(__name__)


class GradientClipping(NetModifier):
    L1_NORM = "l1_norm"
    L2_NORM = "l2_norm"
    BY_NORM = "by_norm"
    BY_VALUE = "by_value"
    GRAD_CLIP_METHODS = [BY_NORM, BY_VALUE]
    CLIP_GRADIENT_NORM_TYPES = [L2_NORM, L1_NORM]

    def __init__(self, grad_clip_method, clip_norm_type="l2_norm", clip_threshold=0.1,
                 use_parameter_norm=False, compute_norm_ratio=False, clip_max=1, clip_min=-1,
                 blobs_to_include=None, blobs_to_exclude=None):
        assert grad_clip_method in self.GRAD_CLIP_METHODS, \
            f"This method of clipping, {grad_clip_method}, has not been implemented."
        if clip_norm_type is not None:
            assert clip_norm_type in self.CLIP_GRADIENT_NORM_TYPES, \
                f"This method of clipping, {clip_norm_type}, has not been implemented."
        self.grad_clip_method = grad_clip_method
        self.clip_norm_type = clip_norm_type
        self.clip_threshold = float(clip_threshold)
        self.use_parameter_norm = use_parameter_norm
        self.compute_norm_ratio = compute_norm_ratio
        self.clip_max = float(clip_max)
        self.clip_min = float(clip_min)
        self.blobs_to_include = blobs_to_include
        self.blobs_to_exclude = blobs_to_exclude

    def modify_net(self, net, init_net=None, grad_map=None, blob_to_device=None,
                   modify_output_record=False):
        assert grad_map is not None
        cpu = core.DeviceOption(caffe2_pb2.CPU)
        if self.blobs_to_include is None:
            final_param_map = dict(grad_map)
        else:
            final_param_map = {}
            for blob in self.blobs_to_include:
                param = core.BlobReference(blob)
                if not net.BlobIsDefined(param):
                    raise Exception(f"param {param} is not defined in net {net.Name()}")
                final_param_map[param] = grad_map[param]
        for blob in self.blobs_to_exclude or ():
            final_param_map.pop(blob, None)

        for param, grad in final_param_map.items():
            if isinstance(grad, core.GradientSlice):
                continue  # sparse gradients are not clipped (as in Caffe2)
            device = get_param_device(param, grad_map[str(param)],
                                      param_to_device=blob_to_device, default_device=cpu)
            with core.DeviceScope(device):
                if self.grad_clip_method == self.BY_NORM:
                    self._clip_by_norm(net, param, grad)
                else:
                    net.Clip([grad], [grad], max=self.clip_max, min=self.clip_min)

    def _norm(self, net, blob, p):
        norm = net.LpNorm([blob], net.NextScopedBlob(prefix=f"{blob}_l{p}_norm"), p=p)
        return net.Pow([norm], exponent=0.5) if p == 2 else norm

    def _clip_by_norm(self, net, param, grad):
        p = 2 if self.clip_norm_type == self.L2_NORM else 1
        grad_norm = self._norm(net, grad, p)
        op_inputs = [grad, grad_norm]
        if self.use_parameter_norm:
            param_norm = self._norm(net, param, p)
            op_inputs.append(param_norm)
            if self.compute_norm_ratio:
                net.Div([grad_norm, param_norm],
                        [net.NextScopedBlob(prefix=f"{param}_norm_ratio")])
        net.ClipTensorByScaling(op_inputs, [grad], threshold=self.clip_threshold)
