"""Caffe2's ``model_helper``: ModelHelper, a training net with its parameters, and
ExtractPredictorNet.

A ModelHelper holds two nets -- ``param_init_net`` (the parameters' fill ops)
and ``net`` (the model; forward, then the backward pass and the optimizer) --
and the parameters the brew helpers create (``create_param``), sorted into
trainable ``params`` (with ``weights`` / ``biases``) and computed params
(running statistics).  ``model.Relu(...)`` adds any registered operator to
``net``, as ``model.net.Relu(...)`` does; types outside Caffe2's short list of
ops known to need no parameters are logged (``allow_not_known_ops=False``
refuses them).
"""

from __future__ import annotations

import logging
from itertools import chain

from caffe2lite import core, scope
from caffe2lite.helpers import db_input
from caffe2lite.modeling import parameter_info
from caffe2lite.modeling.parameter_sharing import parameter_sharing_context
from caffe2lite.optimizer_context import DEFAULT_OPTIM, OptimizerContext
from caffe2lite.regularizer_context import RegularizerContext
from caffe2lite.runtime import registry

logger = logging.getLogger(__name__)

# Operators ModelHelper's attribute sugar adds without a warning (Caffe2's list).
_known_working_ops = [
    "Accuracy", "Adam", "Add", "Adagrad", "SparseAdagrad", "Adadelta", "SparseAdadelta",
    "AveragedLoss", "Cast", "Checkpoint", "ConstantFill", "Copy", "CopyGPUToCPU",
    "CopyCPUToGPU", "DequeueBlobs", "EnsureCPUOutput", "ExpandDims", "Flatten",
    "FlattenToVec", "LabelCrossEntropy", "LearningRate", "MakeTwoClass", "MatMul",
    "NCCLAllreduce", "NHWC2NCHW", "PackSegments", "Print", "PRelu", "ReduceFrontSum",
    "Scale", "ScatterWeightedSum", "Sigmoid", "SortedSegmentSum", "Snapshot", "Softmax",
    "SoftmaxWithLoss", "SquaredL2Distance", "Squeeze", "StopGradient", "Summarize", "Tanh",
    "Transpose", "UnpackSegments", "WeightedSum", "YellowFin",
]


class ModelHelper:
    """A model under construction: ``net``, ``param_init_net`` and its parameters.

        model = model_helper.ModelHelper(name="train_net")
        fc1 = brew.fc(model, "data", "fc1", dim_in=784, dim_out=10)
        model.Softmax(fc1, "pred")

    ``param_model`` shares another model's init net and parameters (a test
    model over a training model's weights); ``arg_scope`` adds defaults that
    brew helpers receive (order, use_cudnn, ...).
    """

    def __init__(self, name=None, init_params=True, allow_not_known_ops=True,
                 skip_sparse_optim=False, param_model=None, arg_scope=None):
        self.name = name or "model"
        self.net = core.Net(self.name)
        if param_model is not None:
            self.param_init_net = param_model.param_init_net
            self.param_to_grad = param_model.param_to_grad
            self.params = param_model.params
            self._parameters_info = param_model._parameters_info
            self._computed_params = param_model._computed_params
        else:
            self.param_init_net = core.Net(self.name + "_init")
            self.param_to_grad = {}
            self.params = []
            self._parameters_info = {}
            self._computed_params = []
        self._param_info_deprecated = []
        self._devices = []
        self.gradient_ops_added = False
        self.init_params = init_params
        self.allow_not_known_ops = allow_not_known_ops
        self.skip_sparse_optim = skip_sparse_optim
        self.weights = []
        self.biases = []
        self._arg_scope = {"order": "NCHW", "use_cudnn": True, "cudnn_exhaustive_search": False}
        if arg_scope is not None:
            self._arg_scope.update(arg_scope)

    @property
    def arg_scope(self):
        return self._arg_scope

    def get_name(self):
        return self.name

    def _infer_param_shape(self, param):
        for op in self.param_init_net.Proto().op:
            if str(param) in op.output:
                for arg in op.arg:
                    if arg.name == "shape":
                        return list(arg.ints)
        return None

    def _update_param_info_deprecated(self):
        assert len(self._param_info_deprecated) <= len(self.params)
        for param in self.params[len(self._param_info_deprecated):]:
            if not isinstance(param, core.BlobReference):
                raise ValueError(f"Param {param} must be a BlobReference!")
            self._param_info_deprecated.append(parameter_info.ParameterInfo(
                param_id=len(self._param_info_deprecated), param=param,
                shape=self._infer_param_shape(param)))
        for info in self._param_info_deprecated:
            info.grad = self.param_to_grad.get(info.name)

    @staticmethod
    def _normalize_tags(tags):
        tags = tags or []
        return set(tags) if isinstance(tags, list) else {tags}

    def create_param(self, param_name, shape, initializer, tags=None):
        """The parameter blob ``param_name`` made by ``initializer`` in the init net.

        A string name gets the current name scope, resolved through the
        ParameterSharing overrides; a BlobReference is used as it is.  Asking
        for an existing parameter returns it (the shape must match).  The
        parameter takes its optimizer from the optimizer context (by tag,
        else DEFAULT) and is added to ``params`` (or the computed params)
        and to ``weights`` / ``biases`` by its tags.
        """
        if isinstance(param_name, core.BlobReference):
            param_name = str(param_name)
        elif isinstance(param_name, str):
            param_name = parameter_sharing_context.get_parameter_name(param_name)
        else:
            raise TypeError("Unsupported type for param_name")
        if param_name in self._parameters_info:
            assert self._parameters_info[param_name].shape == shape
            return self._parameters_info[param_name].blob
        param_info = initializer.create_param(param_name=core.BlobReference(param_name),
                                              init_net=self.param_init_net, shape=shape)
        optim_context = OptimizerContext.current()
        for tag in self._normalize_tags(tags):
            if optim_context.has_optimizer(tag):
                param_info.optimizer = optim_context.get_optimizer(tag)
        if not param_info.optimizer and optim_context.has_optimizer(DEFAULT_OPTIM):
            param_info.optimizer = optim_context.get_optimizer(DEFAULT_OPTIM)
        param_info.regularizer = RegularizerContext.current()
        self._parameters_info[param_name] = param_info
        self.AddParameter(param_info.blob, tags)
        return param_info.blob

    def get_param_info(self, param):
        assert isinstance(param, core.BlobReference), f"Param {param} is not a BlobReference"
        return self._parameters_info.get(param, None)

    def add_param_DEPRECATED(self, param, key=None, shape=None, length=None):  # noqa: N802
        logger.warning("add_param method is DEPRECATED")
        self._update_param_info_deprecated()
        self.AddParameter(param)
        shape = shape if shape is not None else self._infer_param_shape(param)
        if not isinstance(param, core.BlobReference):
            raise ValueError(f"Param {param} must be a BlobReference!")
        self._param_info_deprecated.append(parameter_info.ParameterInfo(
            param_id=len(self._param_info_deprecated), param=param, shape=shape, key=key,
            length=length))
        return self._param_info_deprecated[-1]

    def AddParameter(self, param, tags=None):  # noqa: N802
        """Record ``param`` (a BlobReference) as trainable or, tagged COMPUTED_PARAM, computed."""
        assert isinstance(param, core.BlobReference)
        tags = self._normalize_tags(tags)
        if parameter_info.ParameterTags.COMPUTED_PARAM in tags:
            self._computed_params.append(param)
        else:
            self.params.append(param)
        if parameter_info.ParameterTags.WEIGHT in tags:
            self.weights.append(param)
        if parameter_info.ParameterTags.BIAS in tags:
            self.biases.append(param)

    @staticmethod
    def _NormalizeNamescope(namescope):  # noqa: N802
        if namescope is None:
            return scope.CurrentNameScope()
        if namescope == "" or namescope.endswith(scope._NAMESCOPE_SEPARATOR):
            return namescope
        return namescope + scope._NAMESCOPE_SEPARATOR

    def GetParams(self, namescope=None, top_scope=False):  # noqa: N802
        """The trainable parameters under ``namescope`` (default: the current one)."""
        namescope = ModelHelper._NormalizeNamescope(namescope)
        if namescope == "":
            return self.params[:]
        return [p for p in self.params if p.GetNameScope().startswith(namescope)]

    def Proto(self):  # noqa: N802
        return self.net.Proto()

    def InitProto(self):  # noqa: N802
        return self.param_init_net.Proto()

    def RunAllOnGPU(self, *args, **kwargs):  # noqa: N802
        self.param_init_net.RunAllOnGPU(*args, **kwargs)
        self.net.RunAllOnGPU(*args, **kwargs)

    def CreateDB(self, blob_out, db, db_type, **kwargs):  # noqa: N802
        return self.param_init_net.CreateDB([], blob_out, db=db, db_type=db_type, **kwargs)

    def AddGradientOperators(self, *args, **kwargs):  # noqa: N802
        """The backward pass of ``net`` (once only); fills ``param_to_grad`` and the
        parameters' gradient info for the optimizers; returns the gradient map."""
        if self.gradient_ops_added:
            raise RuntimeError("You cannot run AddGradientOperators twice.")
        self.Validate()
        self.gradient_ops_added = True
        self.grad_map = self.net.AddGradientOperators(*args, **kwargs)
        self.param_to_grad = self.get_param_to_grad(self.params)
        for param, grad in self.param_to_grad.items():
            param_info = self.get_param_info(param)
            if param_info:
                param_info.grad = grad
            else:
                self._parameters_info[param] = parameter_info.ParameterInfo(
                    param_id=None, param=param, grad=grad)
        return self.grad_map

    def get_param_to_grad(self, params):
        """{param: gradient} for the given parameters that have a gradient."""
        if not self.gradient_ops_added:
            raise RuntimeError("You need to run AddGradientOperators first.")
        return {p: self.grad_map[str(p)] for p in params if str(p) in self.grad_map}

    def GetOptimizationParamInfo(self, params=None):  # noqa: N802
        """The ParameterInfo of every parameter with a gradient (or of ``params``);
        sparse ones are left out when the model was made with skip_sparse_optim."""
        if not self.gradient_ops_added:
            raise RuntimeError("Need to call AddGradientOperators first")
        param_to_grad = self.get_param_to_grad(params) if params else self.param_to_grad
        return [self.get_param_info(param) for param, grad in param_to_grad.items()
                if not self.skip_sparse_optim or not isinstance(grad, core.GradientSlice)]

    def _Validate(self):  # noqa: N802
        """The parameter names that appear more than once."""
        names = sorted(str(p) for p in self.params)
        return sorted({a for a, b in zip(names, names[1:]) if a == b})

    def Validate(self):  # noqa: N802
        dupes = self._Validate()
        assert dupes == [], f"Duplicate params: {dupes}"

    def GetComputedParams(self, namescope=None):  # noqa: N802
        """Parameters computed from data rather than trained (e.g. SpatialBN's running
        mean and variance), under ``namescope``."""
        namescope = ModelHelper._NormalizeNamescope(namescope)
        if namescope == "":
            return self._computed_params[:]
        return [p for p in self._computed_params if p.GetNameScope().startswith(namescope)]

    def GetAllParams(self, namescope=None):  # noqa: N802
        return self.GetParams(namescope) + self.GetComputedParams(namescope)

    def TensorProtosDBInput(self, unused_blob_in, blob_out, batch_size, db, db_type,  # noqa: N802
                            **kwargs):
        """A DB reader (CreateDB in the init net) and a TensorProtosDBInput op in ``net``."""
        assert len(unused_blob_in) == 0, (
            "You cannot pass reader to model_helper.TensorProtosDBInput. "
            "Use model.net.TensorProtosDBInput instead to create the op.")
        return db_input.db_input(self, blob_out, batch_size, db, db_type, **kwargs)

    def GetDevices(self):  # noqa: N802
        assert len(self._devices) > 0, "Use data_parallel_model to run model on multiple GPUs."
        return self._devices

    def __getattr__(self, op_type):
        """Any registered operator, added to ``net`` (Caffe2's catch-all)."""
        if op_type.startswith("__"):
            raise AttributeError(op_type)
        if not core.IsOperator(op_type):
            raise AttributeError(f"Method {op_type} is not a registered operator. Did you "
                                 f"mean: [{','.join(registry.close_names(op_type))}]")
        if op_type not in _known_working_ops:
            if not self.allow_not_known_ops:
                raise AttributeError(f"Operator {op_type} is not known to be safe")
            logger.warning("You are creating an op that the ModelHelper does not "
                           "recognize: %s.", op_type)
        return self.net.__getattr__(op_type)

    def __dir__(self):
        return sorted(set(chain(dir(type(self)), self.__dict__, _known_working_ops)))

    def GetCompleteNet(self):  # noqa: N802
        """One net: param_init_net's ops (marked in debug_info) followed by net's."""
        new_net = self.param_init_net.Clone(self.name + "_complete_net", keep_schema=True)
        for op in new_net.Proto().op:
            op.debug_info = op.debug_info + "/param_init_net"
        new_net.AppendNet(self.net)
        if self.net.Proto().HasField("type"):
            new_net.Proto().type = self.net.Proto().type
        return new_net

    def ConstructInitTrainNetfromNet(self, net):  # noqa: N802
        """Split a GetCompleteNet() net back into param_init_net and net."""
        param_op_mask, train_op_mask = [], []
        for idx, op in enumerate(net.Proto().op):
            (param_op_mask if op.debug_info.endswith("/param_init_net")
             else train_op_mask).append(idx)
        self.param_init_net = net.Clone(net.Name() + "/generated_param_init_net",
                                        keep_schema=True, op_id_mask=param_op_mask,
                                        update_external_list=True)
        self.net = net.Clone(net.Name() + "/generated_net", keep_schema=True,
                             op_id_mask=train_op_mask, update_external_list=True)


def ExtractPredictorNet(net_proto, input_blobs, output_blobs, device=None,  # noqa: N802
                        renames=None, disabled_inputs=None):
    """A prediction net from a training net: the ops that compute ``output_blobs``
    from ``input_blobs`` and the net's external inputs (no gradient, no input ops).

    Returns ``(predict_net, parameters)``: the parameters are the external inputs
    of the new net other than ``input_blobs``.  ``device`` places every op,
    ``renames`` renames blobs, ``disabled_inputs`` drops the branches reading
    them.  An op with ``is_test=0`` (a training-mode SpatialBN, Dropout, ...) is
    refused: extract from a test model.
    """
    predict_net = core.Net(net_proto.name + "_predict")
    predict_proto = predict_net.Proto()
    orig_external_inputs = set(net_proto.external_input)
    orig_external_outputs = set(net_proto.external_output)
    input_blobs = {str(b) for b in input_blobs}
    known_blobs = set(orig_external_inputs).union(input_blobs)
    output_blobs = {str(b) for b in output_blobs}
    external_inputs = set(input_blobs)
    external_outputs = set(output_blobs)
    renames = renames or {}
    if disabled_inputs is not None:
        known_blobs = known_blobs - set(disabled_inputs)
    ops = list(net_proto.op)
    starts = [j for j, op in enumerate(ops)
              if input_blobs.intersection(op.input) and op.type != "StopGradient"]
    if not starts:
        raise Exception(f"No ops with input={input_blobs}")
    ends = [j for j, op in enumerate(ops) if output_blobs.intersection(op.output)]
    if not ends:
        raise Exception(f"No ops with output={output_blobs}")

    def rename_list(proto_list):
        renamed = [renames.get(b, b) for b in proto_list]
        del proto_list[:]
        proto_list.extend(renamed)

    for op in ops[min(starts):max(ends) + 1]:
        if not known_blobs.issuperset(op.input):
            logger.debug("Op %s had unknown inputs: %s", op.type,
                         set(op.input).difference(known_blobs))
            continue
        for arg in op.arg:
            if arg.name == "is_test" and arg.i == 0:
                raise Exception("An operator had is_test=0, did you try to extract a "
                                "predictor from a train model (instead of test model)? "
                                f"Op was: {op}")
        new_op = predict_proto.op.add()
        new_op.CopyFrom(op)
        if new_op.type == "RecurrentNetwork":
            external_inputs.update(
                _predictor_step_nets(new_op, rename_list, device) & orig_external_inputs)
        if device is not None:
            new_op.device_option.device_type = device.device_type
            new_op.device_option.device_id = device.device_id
        known_blobs.update(op.output)
        external_inputs.update(set(op.input).intersection(orig_external_inputs))
        external_outputs.update(set(op.output).intersection(orig_external_outputs))

    predict_proto.external_input.extend(sorted(external_inputs))
    predict_proto.external_output.extend(sorted(external_outputs))
    rename_list(predict_proto.external_input)
    rename_list(predict_proto.external_output)
    renamed_input_blobs = [renames.get(b, b) for b in input_blobs]
    for op in predict_proto.op:
        rename_list(op.input)
        rename_list(op.output)
    return predict_net, list(set(predict_proto.external_input) - set(renamed_input_blobs))


def _predictor_step_nets(op, rename_list, device):
    """A RecurrentNetwork op kept for prediction: its backward step net dropped, its
    step net renamed and placed like the op; returns the step net's external inputs."""
    step_inputs = set()
    for arg in op.arg:
        if arg.name == "backward_step_net":
            arg.ClearField("n")
        elif arg.name == "step_net":
            for step_op in arg.n.op:
                rename_list(step_op.input)
                rename_list(step_op.output)
                if device is not None:
                    step_op.device_option.device_type = device.device_type
                    step_op.device_option.device_id = device.device_id
            rename_list(arg.n.external_input)
            rename_list(arg.n.external_output)
            step_inputs.update(arg.n.external_input)
    return step_inputs
