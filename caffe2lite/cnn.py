"""Caffe2's ``cnn``: CNNModelHelper, the deprecated ModelHelper with the brew helpers as
methods (``model.Conv(...)``, ``model.FC(...)``, ...), kept because older scripts and
tutorials build their models with it.

Its ``order``, ``use_cudnn``, ``cudnn_exhaustive_search`` and ``ws_nbytes_limit``
go into the model's arg_scope and to the helpers that take them, as in Caffe2.
"""

import logging

from caffe2lite import brew, workspace
from caffe2lite.model_helper import ModelHelper
from caffe2lite.proto import caffe2_pb2


class CNNModelHelper(ModelHelper):
    """A ModelHelper whose methods call the brew helpers with the model's layout options."""

    def __init__(self, order="NCHW", name=None, use_cudnn=True, cudnn_exhaustive_search=False,
                 ws_nbytes_limit=None, init_params=True, skip_sparse_optim=False,
                 param_model=None):
        logging.warning("[====DEPRECATE WARNING====]: you are creating an object from "
                        "CNNModelHelper class which will be deprecated soon. Please use "
                        "ModelHelper object with brew module.")
        cnn_arg_scope = {"order": order, "use_cudnn": use_cudnn,
                         "cudnn_exhaustive_search": cudnn_exhaustive_search}
        if ws_nbytes_limit:
            cnn_arg_scope["ws_nbytes_limit"] = ws_nbytes_limit
        super().__init__(skip_sparse_optim=skip_sparse_optim,
                         name="CNN" if name is None else name, init_params=init_params,
                         param_model=param_model, arg_scope=cnn_arg_scope)
        self.order = order
        self.use_cudnn = use_cudnn
        self.cudnn_exhaustive_search = cudnn_exhaustive_search
        self.ws_nbytes_limit = ws_nbytes_limit
        if self.order not in ("NHWC", "NCHW"):
            raise ValueError(f"Cannot understand the CNN storage order {self.order}.")

    def _conv_options(self):
        return dict(use_cudnn=self.use_cudnn, order=self.order,
                    cudnn_exhaustive_search=self.cudnn_exhaustive_search,
                    ws_nbytes_limit=self.ws_nbytes_limit)

    def ImageInput(self, blob_in, blob_out, use_gpu_transform=False, **kwargs):  # noqa: N802
        return brew.image_input(self, blob_in, blob_out, order=self.order,
                                use_gpu_transform=use_gpu_transform, **kwargs)

    def VideoInput(self, blob_in, blob_out, **kwargs):  # noqa: N802
        return brew.video_input(self, blob_in, blob_out, **kwargs)

    def PadImage(self, blob_in, blob_out, **kwargs):  # noqa: N802
        self.net.PadImage(blob_in, blob_out, **kwargs)

    def ConvNd(self, *args, **kwargs):  # noqa: N802
        return brew.conv_nd(self, *args, **self._conv_options(), **kwargs)

    def Conv(self, *args, **kwargs):  # noqa: N802
        return brew.conv(self, *args, **self._conv_options(), **kwargs)

    def ConvTranspose(self, *args, **kwargs):  # noqa: N802
        return brew.conv_transpose(self, *args, **self._conv_options(), **kwargs)

    def GroupConv(self, *args, **kwargs):  # noqa: N802
        return brew.group_conv(self, *args, **self._conv_options(), **kwargs)

    def GroupConv_Deprecated(self, *args, **kwargs):  # noqa: N802
        return brew.group_conv_deprecated(self, *args, **self._conv_options(), **kwargs)

    def FC(self, *args, **kwargs):  # noqa: N802
        return brew.fc(self, *args, **kwargs)

    def PackedFC(self, *args, **kwargs):  # noqa: N802
        return brew.packed_fc(self, *args, **kwargs)

    def FC_Prune(self, *args, **kwargs):  # noqa: N802
        return brew.fc_prune(self, *args, **kwargs)

    def FC_Decomp(self, *args, **kwargs):  # noqa: N802
        return brew.fc_decomp(self, *args, **kwargs)

    def FC_Sparse(self, *args, **kwargs):  # noqa: N802
        return brew.fc_sparse(self, *args, **kwargs)

    def Dropout(self, *args, **kwargs):  # noqa: N802
        return brew.dropout(self, *args, order=self.order, use_cudnn=self.use_cudnn, **kwargs)

    def LRN(self, *args, **kwargs):  # noqa: N802
        return brew.lrn(self, *args, order=self.order, use_cudnn=self.use_cudnn, **kwargs)

    def Softmax(self, *args, **kwargs):  # noqa: N802
        return brew.softmax(self, *args, use_cudnn=self.use_cudnn, **kwargs)

    def SpatialBN(self, *args, **kwargs):  # noqa: N802
        return brew.spatial_bn(self, *args, order=self.order, **kwargs)

    def SpatialGN(self, *args, **kwargs):  # noqa: N802
        return brew.spatial_gn(self, *args, order=self.order, **kwargs)

    def InstanceNorm(self, *args, **kwargs):  # noqa: N802
        return brew.instance_norm(self, *args, order=self.order, **kwargs)

    def Relu(self, *args, **kwargs):  # noqa: N802
        return brew.relu(self, *args, order=self.order, use_cudnn=self.use_cudnn, **kwargs)

    def PRelu(self, *args, **kwargs):  # noqa: N802
        return brew.prelu(self, *args, **kwargs)

    def Concat(self, *args, **kwargs):  # noqa: N802
        return brew.concat(self, *args, order=self.order, **kwargs)

    def DepthConcat(self, *args, **kwargs):  # noqa: N802
        """The old depth concat function - we should move to use concat."""
        print("DepthConcat is deprecated. use Concat instead.")
        return self.Concat(*args, **kwargs)

    def Sum(self, *args, **kwargs):  # noqa: N802
        return brew.sum(self, *args, **kwargs)

    def Transpose(self, *args, **kwargs):  # noqa: N802
        return brew.transpose(self, *args, use_cudnn=self.use_cudnn, **kwargs)

    def Iter(self, *args, **kwargs):  # noqa: N802
        return brew.iter(self, *args, **kwargs)

    def Accuracy(self, *args, **kwargs):  # noqa: N802
        return brew.accuracy(self, *args, **kwargs)

    def MaxPool(self, *args, **kwargs):  # noqa: N802
        return brew.max_pool(self, *args, use_cudnn=self.use_cudnn, order=self.order, **kwargs)

    def MaxPoolWithIndex(self, *args, **kwargs):  # noqa: N802
        return brew.max_pool_with_index(self, *args, order=self.order, **kwargs)

    def AveragePool(self, *args, **kwargs):  # noqa: N802
        return brew.average_pool(self, *args, use_cudnn=self.use_cudnn, order=self.order,
                                 **kwargs)

    @property
    def XavierInit(self):  # noqa: N802
        return ("XavierFill", {})

    def ConstantInit(self, value):  # noqa: N802
        return ("ConstantFill", dict(value=value))

    @property
    def MSRAInit(self):  # noqa: N802
        return ("MSRAFill", {})

    @property
    def ZeroInit(self):  # noqa: N802
        return ("ConstantFill", {})

    def AddWeightDecay(self, weight_decay):  # noqa: N802
        return brew.add_weight_decay(self, weight_decay)

    @property
    def CPU(self):  # noqa: N802
        return caffe2_pb2.DeviceOption(device_type=caffe2_pb2.CPU)

    @property
    def GPU(self, gpu_id=0):  # noqa: N802
        return caffe2_pb2.DeviceOption(device_type=workspace.GpuDeviceType, device_id=gpu_id)
