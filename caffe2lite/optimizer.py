"""Caffe2's ``optimizer``: the update operators of a ModelHelper's parameters.

    model.AddGradientOperators([loss])
    optimizer.build_sgd(model, base_learning_rate=0.1, policy="step", stepsize=1, gamma=0.999)

Each ``build_*`` makes an Optimizer and runs it over ``model``'s parameters
that have a gradient (a parameter created under ``UseOptimizer`` keeps its
own): it adds the iteration counter (``optimizer_iteration``, an AtomicIter
in the net), the ``LearningRate`` op (base_lr = -base_learning_rate: the
updates add lr * step), the optimizer's state blobs to ``param_init_net``
(``<param>_momentum``, ``<param>_squared_sum``, ``<param>_first_moment``, ...)
and the update op to ``net``, sparse gradients (GradientSlice) going to the
sparse variant.  ``max_gradient_norm`` scales every learning rate by
min(1, max_gradient_norm / global gradient norm); ``allow_lr_injection``
multiplies them by the blob ``lr_injection`` (``set_lr_injection``).

Blob names, defaults and the ops emitted are Caffe2's.  Optimizer options
that need operators caffe2lite does not have (Adagrad's pruning masks, SWA,
EMA) build their ops all the same; the net then fails to create, naming
the missing operator.
"""

from __future__ import annotations

import copy
import logging
from collections import defaultdict, namedtuple

import numpy as np

from caffe2lite import core, scope, utils, workspace
from caffe2lite.modeling import parameter_info
from caffe2lite.proto import caffe2_pb2

_LEARNING_RATE_INJECTION = "lr_injection"
AuxOptimizerParams = namedtuple("AuxOptimizerParams", ["local", "shared"])
_optimizer_instance_count = defaultdict(int)
FP16_ENGINES = ["SIMD_Q_FP16", "SIMD_Q_STOC_FP16", "SIMD_Q_STOC_MKL_FP16"]
logger = logging.getLogger(__name__)


def reset_optimizer_instance_count():
    """Forget how many optimizers of each class were made (their blob names count them)."""
    _optimizer_instance_count.clear()


def _one(param_init_net, with_node_name=False):
    """The ONE blob of the current device (one per device: the name says which)."""
    dev = scope.CurrentDeviceScope() or core.DeviceOption(caffe2_pb2.CPU)
    suffix = dev.node_name if with_node_name else ""
    return param_init_net.ConstantFill([], f"ONE_{dev.device_type}_{dev.device_id}{suffix}",
                                       shape=[1], value=1.0)


def _on_gpu():
    current = scope.CurrentDeviceScope()
    return current is not None and core.IsGPUDeviceType(current.device_type)


def _param_rows(param_init_net, param, suffix, shapes=None, **fill_kwargs):
    """A ConstantFill with one value per row of ``param``: its shape inferred from the
    init net, or (when it cannot be) taken at run time from Shape + Slice."""
    if shapes is None:
        shapes, _ = workspace.InferShapesAndTypes([param_init_net])
    if str(param) in shapes:
        return param_init_net.ConstantFill([], str(param) + suffix,
                                           shape=[shapes[str(param)][0]], **fill_kwargs)
    shape = param_init_net.Shape(param, str(param) + "_shape")
    num_rows = param_init_net.Slice([shape], str(shape) + "_numrows", starts=[0], ends=[1])
    return param_init_net.ConstantFill(num_rows, str(param) + suffix, input_as_shape=1,
                                       **fill_kwargs)


class Optimizer:
    """Adds the update ops of one parameter: ``optimizer(net, param_init_net, param_info)``
    or ``optimizer(net, param_init_net, param, grad)``."""

    def __init__(self):
        self._aux_params = AuxOptimizerParams(local=[], shared=[])
        self._instance_num = _optimizer_instance_count[self.__class__.__name__]
        _optimizer_instance_count[self.__class__.__name__] += 1
        self._lr_multiplier = None
        self._local_lr_multiplier = None
        self._local_lr_multiplier_on_gpu = False
        self._use_dedicated_lr_iteration_counter = False

    def __call__(self, net, param_init_net, param, grad=None):
        if grad is None:
            assert isinstance(param, parameter_info.ParameterInfo), \
                f"Expected parameter to be of type ParameterInfo, got {param}"
            assert param.grad is not None
        else:
            if isinstance(param, str):
                param = core.BlobReference(param)
            param = parameter_info.ParameterInfo(param_id=None, param=param, grad=grad)
        self._run(net, param_init_net, param)

    def _run(self, net, param_init_net, param_info):
        raise Exception("Not Implemented")

    def get_cpu_blob_name(self, base_str, node_name=""):
        return f"{self.__class__.__name__}_{self._instance_num}_{base_str}{node_name}_cpu"

    def get_gpu_blob_name(self, base_str, gpu_id, node_name):
        return (f"{self.__class__.__name__}_{self._instance_num}_{base_str}{node_name}"
                f"_gpu{gpu_id}")

    @property
    def attributes(self):
        attr = copy.deepcopy(self.__dict__)
        del attr["_instance_num"]
        return attr

    @property
    def use_dedicated_lr_iteration_counter(self):
        return self._use_dedicated_lr_iteration_counter

    @use_dedicated_lr_iteration_counter.setter
    def use_dedicated_lr_iteration_counter(self, val):
        self._use_dedicated_lr_iteration_counter = val

    def make_unique_blob_name(self, base_str):
        """A blob name unique to this optimizer instance and the current device."""
        current = scope.CurrentDeviceScope()
        if current is None:
            return self.get_cpu_blob_name(base_str)
        if core.IsGPUDeviceType(current.device_type):
            return self.get_gpu_blob_name(base_str, current.device_id, current.node_name)
        return self.get_cpu_blob_name(base_str, current.node_name)

    def build_lr(self, net, param_init_net, base_learning_rate, learning_rate_blob=None,
                 policy="fixed", iter_val=0, **kwargs):
        """(lr blob, iteration blob): LearningRate(base_lr=-base_learning_rate) of the shared
        iteration counter, times the global and local multipliers when set."""
        if learning_rate_blob is None:
            learning_rate_blob = self.make_unique_blob_name("lr")
        if self._use_dedicated_lr_iteration_counter:
            iteration = utils.BuildUniqueMutexIter(
                param_init_net, net, iter=utils.OPTIMIZER_ITERATION_LR_NAME,
                iter_mutex=utils.ITERATION_MUTEX_LR_NAME, iter_val=iter_val)
            logger.info("Created dedicated learning rate iteration counter: %s", iteration)
        else:
            iteration = utils.BuildUniqueMutexIter(param_init_net, net, iter_val=iter_val)
        if not net.BlobIsDefined(learning_rate_blob):
            # we minimize, so the rate is negative: the update ops add lr * step
            lr = net.LearningRate([iteration], learning_rate_blob, base_lr=-base_learning_rate,
                                  policy=policy, **kwargs)
        else:
            lr = net.GetBlobRef(learning_rate_blob)
        if self._lr_multiplier is not None:
            lr_multiplier = net.CopyFromCPUInput(self._lr_multiplier,
                                                 self.make_unique_blob_name("lr_multiplier"))
            lr = net.Mul([lr, lr_multiplier], self.make_unique_blob_name("scaled_lr"),
                         broadcast=1)
        if self._local_lr_multiplier is not None:
            local = self._local_lr_multiplier
            if _on_gpu() and not self._local_lr_multiplier_on_gpu:
                local = net.CopyFromCPUInput(local,
                                             self.make_unique_blob_name("local_lr_multiplier"))
            lr = net.Mul([lr, local], self.make_unique_blob_name("local_scaled_lr"),
                         broadcast=1)
        return lr, iteration

    def build_non_lr_iter(self, net, param_init_net, iter_val=0):
        """The non-learning-rate iteration counter when the rate has its own one."""
        assert self._use_dedicated_lr_iteration_counter, (
            "This method should be only called when dedicated learning rate iteration "
            "counter is used.")
        iteration = utils.BuildUniqueMutexIter(param_init_net, net, iter_val=iter_val)
        logger.info("Created iteration counter for non learning rate purposes: %s", iteration)
        hint = self.make_unique_blob_name("iter_placement_hint")
        if not net.BlobIsDefined(hint):  # keeps the counter with the trainer (Caffe2's hint)
            net.LearningRate([iteration], hint, base_lr=1.0, policy="fixed")
        return iteration

    def add_lr_multiplier(self, lr_multiplier):
        """Multiply every learning rate this optimizer builds from now on by this blob."""
        self._lr_multiplier = lr_multiplier

    def _add_local_lr_multiplier(self, local_lr_multiplier, is_gpu_blob=False):
        self._local_lr_multiplier = local_lr_multiplier
        self._local_lr_multiplier_on_gpu = is_gpu_blob

    def _clear_local_lr_multiplier(self):
        self._local_lr_multiplier = None
        self._local_lr_multiplier_on_gpu = False

    @staticmethod
    def dedup(net, sparse_dedup_aggregator, grad):
        """The sparse gradient with repeated indices merged ("sum" / "mean"), if asked."""
        assert isinstance(grad, core.GradientSlice), \
            f"Dedup only works for sparse gradient, got {grad}"
        if sparse_dedup_aggregator:
            return net.DeduplicateGradientSlices(grad, aggregator=sparse_dedup_aggregator)
        return grad

    def get_auxiliary_parameters(self):
        """AuxOptimizerParams(local=[per-parameter state], shared=[shared state])."""
        return self._aux_params

    # The attribute holding the base learning rate, which scale_learning_rate scales.
    _rate_attr = None

    def scale_learning_rate(self, scale):
        if self._rate_attr is None:
            raise NotImplementedError(
                "Optimizer Need to Implement `scale_learning_rate` method.")
        setattr(self, self._rate_attr, getattr(self, self._rate_attr) * scale)

    def _lr(self, net, param_init_net, rate):
        """build_lr at ``rate`` with this optimizer's policy and its extra arguments."""
        return self.build_lr(net, param_init_net, base_learning_rate=rate,
                             policy=self.policy, **self.init_kwargs)

    def create_lars_inputs(self, param_init_net, weight_decay, trust, lr_max):
        wd = param_init_net.ConstantFill([], "weight_decay", shape=[1], value=weight_decay)
        trust = param_init_net.ConstantFill([], "trust", shape=[1], value=trust)
        lr_max = param_init_net.ConstantFill([], "lr_max", shape=[1], value=lr_max)
        return wd, trust, lr_max

    def _add_lars(self, net, param_init_net, param, grad, lars):
        """LARS: a per-parameter rate multiplier (dense gradients only)."""
        self._clear_local_lr_multiplier()
        if lars is None or isinstance(grad, core.GradientSlice):
            return
        assert lars >= 0, f"Lars offset must be nonnegative, got {lars}"
        wd, trust, lr_max = self.create_lars_inputs(param_init_net, 0.0, 1.0,
                                                    np.finfo(np.float32).max)
        multiplier = net.Lars([param, grad, wd, trust, lr_max],
                              self.make_unique_blob_name(str(param) + "_lars"),
                              offset=lars, lr_min=0.0)
        self._add_local_lr_multiplier(multiplier, is_gpu_blob=_on_gpu())


class SgdOptimizer(Optimizer):
    """SGD: WeightedSum (ScatterWeightedSum for sparse gradients), or MomentumSGDUpdate
    (SparseMomentumSGDUpdate) with ``momentum`` > 0 (``nesterov`` by default)."""

    _rate_attr = "base_learning_rate"

    def __init__(self, base_learning_rate=0.01, policy="fixed", momentum=0.0, nesterov=True,
                 sparse_dedup_aggregator=None, lars=None, **kwargs):
        super().__init__()
        self.base_learning_rate = base_learning_rate
        self.policy = policy
        self.momentum = momentum
        self.nesterov = nesterov
        self.sparse_dedup_aggregator = sparse_dedup_aggregator
        self.lars = lars
        self.init_kwargs = kwargs

    def _rate_is_zero(self):
        """A zero rate adds no update; a negative one is refused."""
        assert self.base_learning_rate >= 0, \
            f"Expect positive base learning rate, got {self.base_learning_rate}"
        return self.base_learning_rate == 0

    def _run(self, net, param_init_net, param_info):
        param, grad = param_info.blob, param_info.grad
        if self._rate_is_zero():
            return
        self._add_lars(net, param_init_net, param, grad, self.lars)
        # WeightedSum adds lr * grad: negative rate; MomentumSGDUpdate subtracts: positive
        lr_sign = -1 if self.momentum else 1
        lr, _ = self._lr(net, param_init_net, self.base_learning_rate * lr_sign)
        one = _one(param_init_net, with_node_name=True)
        self._aux_params.shared.append(one)
        if self.momentum > 0:
            momentum_data = param_init_net.ConstantFill(param, str(param) + "_momentum",
                                                        value=0.0)
            self._aux_params.local.append(momentum_data)
        if isinstance(grad, core.GradientSlice):
            grad = self.dedup(net, self.sparse_dedup_aggregator, grad)
            if self.momentum > 0.0:
                net.SparseMomentumSGDUpdate(
                    [grad.values, momentum_data, lr, param, grad.indices],
                    [grad.values, momentum_data, param], momentum=self.momentum,
                    nesterov=self.nesterov)
            else:
                net.ScatterWeightedSum([param, one, grad.indices, grad.values, lr], param)
        elif self.momentum > 0.0:
            net.MomentumSGDUpdate([grad, momentum_data, lr, param],
                                  [grad, momentum_data, param], momentum=self.momentum,
                                  nesterov=self.nesterov)
        else:
            net.WeightedSum([param, one, grad, lr], param)



class MultiPrecisionSgdOptimizer(SgdOptimizer):
    """Momentum SGD of float16 parameters on their float32 master copies (PseudoFP16
    initializers): HalfToFloat of the gradient, MomentumSGDUpdate, FloatToHalf back."""

    def __init__(self, base_learning_rate=0.1, momentum=0.0, policy="fixed", nesterov=True,
                 sparse_dedup_aggregator=None, **kwargs):
        super().__init__(base_learning_rate=base_learning_rate, policy=policy,
                         momentum=momentum, nesterov=nesterov,
                         sparse_dedup_aggregator=sparse_dedup_aggregator, **kwargs)

    def _run(self, net, param_init_net, param_info):
        param = param_info.blob
        param_fp32 = (param_info.blob_copy[core.DataType.FLOAT]
                      if param_info.blob_copy is not None else None)
        if param_fp32 is None:  # a float32 parameter: plain SGD
            return SgdOptimizer._run(self, net, param_init_net, param_info)
        grad = param_info.grad
        if self._rate_is_zero():
            return
        lr, _ = self._lr(net, param_init_net, -self.base_learning_rate)
        momentum_data = param_init_net.ConstantFill(param_fp32, str(param) + "_momentum",
                                                    value=0.0)
        self._aux_params.local.append(momentum_data)
        assert not isinstance(grad, core.GradientSlice), \
            "MultiPrecisionSgd does not support sparse gradients"
        grad_fp32 = net.HalfToFloat(grad, grad + "_fp32")
        net.MomentumSGDUpdate([grad_fp32, momentum_data, lr, param_fp32],
                              [grad_fp32, momentum_data, param_fp32], momentum=self.momentum,
                              nesterov=self.nesterov)
        net.FloatToHalf(param_fp32, param)


class FP16SgdOptimizer(SgdOptimizer):
    """Caffe2's FP16 momentum SGD (FP16MomentumSGDUpdate / FP32MomentumSGDUpdate, which
    Caffe2 had on CUDA only; caffe2lite has neither)."""

    def __init__(self, base_learning_rate=0.1, momentum=0.0, policy="fixed", nesterov=True,
                 weight_decay=0.0001, sparse_dedup_aggregator=None, **kwargs):
        super().__init__(base_learning_rate=base_learning_rate, policy=policy,
                         momentum=momentum, nesterov=nesterov,
                         sparse_dedup_aggregator=sparse_dedup_aggregator, **kwargs)
        self.weight_decay = weight_decay

    def _run(self, net, param_init_net, param_info, fp32_update=False):
        param = param_fp32 = param_info.blob
        fp32_update = fp32_update or str(param).find("spatbn") != -1
        copies = param_info.blob_copy
        if not fp32_update and copies is not None:
            if core.DataType.FLOAT in copies:
                param_fp32 = copies[core.DataType.FLOAT]
            elif core.DataType.FLOAT16 in copies:
                param = copies[core.DataType.FLOAT16]
        fp32_update = fp32_update or copies is None
        grad = param_info.grad
        if self._rate_is_zero():
            return
        lr, _ = self._lr(net, param_init_net, -self.base_learning_rate)
        momentum_fp32 = param_init_net.ConstantFill(param_fp32, str(param) + "_momentum_fp32",
                                                    value=0.0)
        momentum_data = param_init_net.FloatToHalf(momentum_fp32, str(param) + "_momentum")
        self._aux_params.local.append(momentum_data)
        assert not isinstance(grad, core.GradientSlice), \
            "FP16Sgd does not support sparse gradients"
        op, moment = (("FP32MomentumSGDUpdate", momentum_fp32) if fp32_update
                      else ("FP16MomentumSGDUpdate", momentum_data))
        net.__getattr__(op)([grad, moment, lr, param], [grad, moment, param],
                            momentum=self.momentum, nesterov=self.nesterov,
                            weight_decay=self.weight_decay)


class WeightDecayBuilder(Optimizer):
    """grad += weight_decay * param (WeightedSum with the ONE and wd blobs)."""

    def __init__(self, weight_decay):
        self.weight_decay = weight_decay

    def _run(self, net, param_init_net, param_info):
        dev = scope.CurrentDeviceScope() or core.DeviceOption(caffe2_pb2.CPU)
        one = _one(param_init_net)
        wd = param_init_net.ConstantFill([], f"wd_{dev.device_type}_{dev.device_id}",
                                         shape=[1], value=self.weight_decay)
        if isinstance(param_info.grad, core.GradientSlice):
            raise ValueError("Weight decay does not yet support sparse gradients")
        net.WeightedSum([param_info.grad, one, param_info.blob, wd], param_info.grad)



class AdagradOptimizer(Optimizer):
    """AdaGrad: Adagrad (dense), SparseAdagrad, or with ``rowWise`` RowWiseSparseAdagrad
    (one squared sum per row).  ``weight_decay`` is skipped on 1-D parameters;
    ``counter_halflife`` > 0 scales it by row frequency (RowWiseCounter).  The
    pruning / SWA / EMA / weight-scale options build Caffe2's ops for them."""

    _rate_attr = "alpha"

    def __init__(self, alpha=0.01, epsilon=1e-4, decay=1, weight_decay=0.0, policy="fixed",
                 sparse_dedup_aggregator=None, rowWise=False, engine="", lars=None,  # noqa: N803
                 output_effective_lr=False, output_effective_lr_and_update=False,
                 pruning_options=None, swa_options=None, ema_options=None, weight_scale=None,
                 counter_halflife=-1, use_dedicated_lr_iteration_counter=False, **kwargs):
        super().__init__()
        self.alpha = alpha
        self.epsilon = epsilon
        self.decay = decay
        self.weight_decay = float(weight_decay)
        self.policy = policy
        self.sparse_dedup_aggregator = sparse_dedup_aggregator
        self.rowWise = rowWise
        self.engine = engine
        self.lars = lars
        self.output_effective_lr = output_effective_lr
        self.output_effective_lr_and_update = output_effective_lr_and_update
        self.counter_halflife = counter_halflife
        self.init_kwargs = kwargs
        self.weight_scale = weight_scale
        self.use_dedicated_lr_iteration_counter = use_dedicated_lr_iteration_counter
        self._process_pruning_options(pruning_options)
        self._process_swa_options(swa_options)
        self._process_ema_options(ema_options)

    def set_mapping_for_param2ema_teacher_param(self, param_mapping):
        self.param2ema_teacher_param = param_mapping

    def _process_swa_options(self, swa_options):
        self.swa_enabled = bool(swa_options)
        if self.swa_enabled:
            for key in ("swa_avg_start_it", "swa_avg_end_it", "swa_feedback_start_it",
                        "swa_feedback_step", "swa_feedback_end_it"):
                setattr(self, key, swa_options.get(key, None))

    def _process_ema_options(self, ema_options):
        self.ema_enabled = bool(ema_options and "ema_alpha" in ema_options)
        self.ema_teacher_enabled = bool(ema_options and "ema_teacher_alpha" in ema_options)
        self.param2ema_teacher_param = {}
        if self.ema_enabled or self.ema_teacher_enabled:
            for key in ("ema_start", "ema_end", "ema_step", "ema_alpha", "ema_teacher_alpha"):
                setattr(self, key, ema_options.get(key, None))
            self.ema_teacher_module_name = ema_options.get("ema_teacher_module_name",
                                                           "ema_teacher_arch")

    def _process_pruning_options(self, pruning_options):
        pruning_options = pruning_options or {}
        assert isinstance(pruning_options, dict), \
            f"pruning_options can only be provided as a dictionary, currently: {pruning_options}"
        self.mask_tensor = pruning_options.get("mask_tensor", None)
        self.mask_db_path = pruning_options.get("mask_db_path", None)
        self.mask_db_type = pruning_options.get("mask_db_type", None)
        self.mask_blob_name = pruning_options.get("mask_blob_name", None)
        self.prune_delays = pruning_options.get("prune_delays", [])
        self.prune_ratios = pruning_options.get("prune_ratios", [])
        self.prune_block_size = pruning_options.get("prune_block_size", 1)
        db_given = self.mask_db_path is not None or self.mask_db_type is not None
        if self.mask_tensor is not None:
            assert type(self.mask_tensor) is np.ndarray, "mask_tensor must be a numpy array!"
            assert not db_given and self.mask_blob_name is None, \
                "mask can be provided through either a numpy array or a db path, not both"
        if db_given:
            assert self.mask_db_path is not None and self.mask_db_type is not None, \
                "when mask is provided through db, db path, db type, and blob name are all " \
                "needed"
        if self.prune_delays:
            assert self.prune_ratios is not None and \
                len(self.prune_delays) == len(self.prune_ratios), \
                "Prune Delays and prune ratios should be of the same length"
            assert self.mask_tensor is None, "Mask Tensor should be None with prune ratios"
            assert self.mask_db_path is None, "Mask DB Path should be None with prune ratios"
        self.use_mask = self.mask_tensor is not None or db_given or bool(self.prune_delays)

    def _mask_blobs(self, param_init_net, param, grad):
        """(mask, mask_changed, last_mask_updated_iter) of the pruning options."""
        mask_changed = last_updated = None
        sparse = isinstance(grad, core.GradientSlice)

        def changed_blob():
            return param_init_net.ConstantFill([], [str(param) + "_mask_changed_blob"],
                                               value=False, dtype=core.DataType.BOOL,
                                               shape=[1])

        if self.mask_tensor is not None:
            if not sparse:
                mask = param_init_net.GivenTensorFill([], [str(param) + "_mask"],
                                                      values=self.mask_tensor,
                                                      shape=self.mask_tensor.shape)
            else:
                self.mask_tensor = self.mask_tensor.astype(np.uint8)
                mask = param_init_net.GivenTensorBoolFill([], [str(param) + "_mask"],
                                                          values=self.mask_tensor,
                                                          shape=self.mask_tensor.shape)
                mask = param_init_net.Cast(mask, to=core.DataType.UINT8)
                mask_changed = changed_blob()
        elif self.mask_db_path is not None or self.mask_db_type is not None:
            self.mask_blob_name = self.mask_blob_name or str(param) + "_mask"
            mask = param_init_net.Load([], self.mask_blob_name, db=self.mask_db_path,
                                       db_type=self.mask_db_type, absolute_path=True)
            if sparse:
                mask_changed = changed_blob()
        else:  # prune_delays
            last_updated = param_init_net.ConstantFill(
                [], [str(param) + "_last_mask_updated_iter"], value=-1,
                dtype=core.DataType.INT64, shape=[1])
            assert not sparse, ("Prune Delays and Prune Ratios are currently not supported "
                                "for sparse operators")
            mask = param_init_net.GivenTensorFill([], [str(param) + "_empty_mask"], values=[],
                                                  dtype=core.DataType.FLOAT, shape=[0])
        return mask, mask_changed, last_updated

    def _run(self, net, param_init_net, param_info):
        param, grad = param_info.blob, param_info.grad
        if self.alpha <= 0:
            return
        if self.lars is not None and not isinstance(grad, core.GradientSlice):
            assert self.weight_decay == 0, "weight decay is not implemented for LARS yet"
        self._add_lars(net, param_init_net, param, grad, self.lars)
        lr, lr_iteration = self._lr(net, param_init_net, self.alpha)
        iteration = (self.build_non_lr_iter(net, param_init_net, iter_val=0)
                     if self._use_dedicated_lr_iteration_counter else lr_iteration)
        if self.counter_halflife > 0:
            self._aux_params.shared.append(iteration)
        shapes, _ = workspace.InferShapesAndTypes([param_init_net])
        if self.rowWise:
            squared_sum = _param_rows(param_init_net, param, "_avg_squared_sum", shapes,
                                      value=0.0)
        elif self.engine in FP16_ENGINES:
            assert self.weight_decay == 0, \
                f"weight decay is not tested for engine: {self.engine}"
            assert str(param) in shapes, shapes
            squared_sum = param_init_net.Float16ConstantFill(
                [], str(param) + "_squared_sum", value=0.0, shape=shapes[str(param)])
        else:
            squared_sum = param_init_net.ConstantFill([param], str(param) + "_squared_sum",
                                                      value=0.0)
        mask = mask_changed = last_updated = None
        if self.use_mask:
            assert self.weight_decay == 0, "weight decay is not implemented for use_mask yet"
            mask, mask_changed, last_updated = self._mask_blobs(param_init_net, param, grad)
        self._aux_params.local.append(squared_sum)
        if self.counter_halflife > 0:
            update_counter = _param_rows(param_init_net, param, "_update_counter", shapes,
                                         value=0.0, dtype=core.DataType.DOUBLE)
            prev_update_iter = _param_rows(param_init_net, param, "_prev_update_iter", shapes,
                                           value=0, dtype=core.DataType.INT64)
            self._aux_params.local.extend([update_counter, prev_update_iter])
        if self.rowWise:
            assert isinstance(grad, core.GradientSlice), (
                "If SparseAdagrad with rowWise=True, gradient must be a gradientslice. PLease "
                "ensure that rowWise is not enabled for the dense Adagrad optimizer, as it is "
                "not supported.")
        param_shape = shapes.get(str(param))
        weight_decay = self.weight_decay
        if param_shape is not None and len(param_shape) == 1 and weight_decay:
            weight_decay = 0.0  # no weight decay on 1-D (bias-like) parameters
            logger.warning("SKIPPING weight decay on 1d %s param: %s.shape is %s",
                           "sparse" if isinstance(grad, core.GradientSlice) else "dense",
                           param, param_shape)
        if isinstance(grad, core.GradientSlice):
            assert self.decay == 1.0, \
                "Decay is not implemented for SparseAdagrad and must be set to 1"
            grad = self.dedup(net, self.sparse_dedup_aggregator, grad)
            inputs = [param, squared_sum, grad.indices, grad.values, lr]
            outputs = [param, squared_sum]
            if self.use_mask:
                op = "MaskedRowWiseSparseAdagrad" if self.rowWise else "MaskedSparseAdagrad"
                inputs += [mask, mask_changed]
            elif self.rowWise:
                op = "RowWiseSparseAdagrad"
                if self.counter_halflife > 0:
                    inputs.append(update_counter)
            else:
                op = "SparseAdagrad"
            if self.prune_delays:
                inputs += [iteration, last_updated]
                outputs += [mask, last_updated]
            kwargs = dict(epsilon=self.epsilon, engine=self.engine)
            if weight_decay > 0:
                kwargs["weight_decay"] = weight_decay
                if self.counter_halflife != -1:
                    kwargs["counter_halflife"] = self.counter_halflife
            net.__getattr__(op)(inputs, outputs, **kwargs)
            if self.counter_halflife > 0:
                net.RowWiseCounter([prev_update_iter, update_counter, grad.indices, iteration],
                                   [prev_update_iter, update_counter],
                                   counter_halflife=self.counter_halflife)
        else:
            self._dense_adagrad(net, param_init_net, param, grad, squared_sum, lr, iteration,
                                weight_decay, mask, last_updated)
        self._add_averaging(net, param_init_net, param, iteration, squared_sum)

    def _dense_adagrad(self, net, param_init_net, param, grad, squared_sum, lr, iteration,
                       weight_decay, mask, last_updated):
        inputs, outputs = [param, squared_sum, grad, lr], [param, squared_sum]
        if self.output_effective_lr_and_update:
            assert not self.use_mask, \
                "MaskedAdagrad doesn't support outputting effective_lr_and_update"
            outputs += [str(param) + "_effective_lr", str(param) + "_update"]
        elif self.output_effective_lr:
            assert not self.use_mask, "MaskedAdagrad doesn't support outputting effective_lr"
            outputs.append(str(param) + "_effective_lr")
        if self.use_mask:
            inputs.append(mask)
            if self.prune_delays:
                inputs += [iteration, last_updated]
                outputs += [mask, last_updated]
            net.MaskedAdagrad(inputs, outputs, epsilon=self.epsilon, decay=float(self.decay),
                              block_size=self.prune_block_size, delays=self.prune_delays,
                              prune_ratios=self.prune_ratios, engine=self.engine)
            return
        kwargs = dict(epsilon=self.epsilon, decay=float(self.decay), engine=self.engine)
        if weight_decay > 0:
            kwargs["weight_decay"] = weight_decay
        net.Adagrad(inputs, outputs, **kwargs)
        if self.swa_enabled:
            param_swa = str(param) + "_swa"
            if not param_init_net.BlobIsDefined(param_swa):
                param_init_net.ConstantFill([param], param_swa, value=0.0)
                self._aux_params.local.append(param_swa)
            net.SWA([param, param_swa, iteration], [param, param_swa],
                    avg_start=self.swa_avg_start_it, avg_end=self.swa_avg_end_it,
                    feedback_start=self.swa_feedback_start_it,
                    feedback_step=self.swa_feedback_step,
                    feedback_end=self.swa_feedback_end_it)

    def _add_averaging(self, net, param_init_net, param, iteration, squared_sum):
        """The EMA, EMA-teacher and weight-scale ops the options ask for."""
        targets = []
        if self.ema_enabled:
            targets.append((str(param) + "_ema", self.ema_alpha))
        if self.ema_teacher_enabled and param in self.param2ema_teacher_param:
            targets.append((self.param2ema_teacher_param[param], self.ema_teacher_alpha))
        for param_ema, alpha in targets:
            if not param_init_net.BlobIsDefined(param_ema):
                param_init_net.ConstantFill([param], param_ema, value=0.0)
                self._aux_params.local.append(param_ema)
            net.EMA([param, param_ema, iteration], [param, param_ema], ema_start=self.ema_start,
                    ema_end=self.ema_end, ema_step=self.ema_step, ema_alpha=alpha)
        if self.weight_scale:
            scaled = [param] + ([squared_sum] if self.weight_scale.to_aux else [])
            for blob in scaled:
                net.WeightScale([blob, iteration], [blob],
                                stepsize=self.weight_scale.stepsize,
                                upper_bound_iter=self.weight_scale.upper_bound_iter,
                                scale=float(self.weight_scale.scale))



class WngradOptimizer(Optimizer):
    """WNGrad: Wngrad / SparseWngrad with one scalar ``<param>_moment`` (moment_init)."""

    _rate_attr = "alpha"

    def __init__(self, alpha=1.0, epsilon=1e-9, policy="fixed", sparse_dedup_aggregator=None,
                 engine="", moment_init=100.0, lars=None, output_effective_lr=False,
                 output_effective_lr_and_update=False, **kwargs):
        super().__init__()
        self.alpha = alpha
        self.epsilon = epsilon
        self.policy = policy
        self.sparse_dedup_aggregator = sparse_dedup_aggregator
        self.engine = engine
        self.moment_init = moment_init
        self.lars = lars
        self.output_effective_lr = output_effective_lr
        self.output_effective_lr_and_update = output_effective_lr_and_update
        self.init_kwargs = kwargs

    def _run(self, net, param_init_net, param_info):
        param, grad = param_info.blob, param_info.grad
        if self.alpha <= 0:
            return
        self._add_lars(net, param_init_net, param, grad, self.lars)
        lr, _ = self._lr(net, param_init_net, self.alpha)
        moment = param_init_net.ConstantFill([], str(param) + "_moment", shape=[1],
                                             value=self.moment_init)
        self._aux_params.local.append(moment)
        if isinstance(grad, core.GradientSlice):
            grad = self.dedup(net, self.sparse_dedup_aggregator, grad)
            net.SparseWngrad([param, moment, grad.indices, grad.values, lr], [param, moment],
                             epsilon=self.epsilon, engine=self.engine)
            return
        outputs = [param, moment]
        if self.output_effective_lr_and_update:
            outputs += [str(param) + "_effective_lr", str(param) + "_update"]
        elif self.output_effective_lr:
            outputs.append(str(param) + "_effective_lr")
        net.Wngrad([param, moment, grad, lr], outputs, epsilon=self.epsilon, engine=self.engine)



class StormOptimizer(Optimizer):
    """STORM: Storm / SparseStorm with ``<param>_moment`` and ``<param>_grad_sq_sum``
    (grad_sq_init); ``lr`` is k of the paper, ``momentum`` c, ``beta`` w."""

    _rate_attr = "lr"

    def __init__(self, lr=0.1, momentum=10.0, beta=0.1, grad_sq_init=0.01, policy="fixed",
                 sparse_dedup_aggregator=None, lars=None, **kwargs):
        super().__init__()
        self.lr = lr
        self.momentum = momentum
        self.beta = beta
        self.grad_sq_init = grad_sq_init
        self.policy = policy
        self.sparse_dedup_aggregator = sparse_dedup_aggregator
        self.lars = lars
        self.init_kwargs = kwargs

    def _run(self, net, param_init_net, param_info):
        param, grad = param_info.blob, param_info.grad
        if self.lr <= 0:
            return
        self._add_lars(net, param_init_net, param, grad, self.lars)
        lr, _ = self._lr(net, param_init_net, self.lr)
        moment = param_init_net.ConstantFill(param, str(param) + "_moment", value=0.0)
        grad_sq_sum = param_init_net.ConstantFill([], str(param) + "_grad_sq_sum", shape=[1],
                                                  value=self.grad_sq_init)
        self._aux_params.local.extend([moment, grad_sq_sum])
        if isinstance(grad, core.GradientSlice):
            grad = self.dedup(net, self.sparse_dedup_aggregator, grad)
            net.SparseStorm([param, moment, grad_sq_sum, grad.values, grad.indices, lr],
                            [param, moment, grad_sq_sum], momentum=self.momentum,
                            beta=self.beta)
        else:
            net.Storm([param, moment, grad_sq_sum, grad, lr], [param, moment, grad_sq_sum],
                      momentum=self.momentum, beta=self.beta)



class AdadeltaOptimizer(Optimizer):
    """AdaDelta: Adadelta / SparseAdadelta with ``<param>_squared_moment`` and
    ``<param>_squared_moment_update``."""

    _rate_attr = "alpha"

    def __init__(self, alpha=0.01, epsilon=1e-4, decay=0.95, policy="fixed",
                 sparse_dedup_aggregator=None, engine="", **kwargs):
        super().__init__()
        self.alpha = alpha
        self.epsilon = epsilon
        self.decay = decay
        self.policy = policy
        self.sparse_dedup_aggregator = sparse_dedup_aggregator
        self.engine = engine
        self.init_kwargs = kwargs

    def _run(self, net, param_init_net, param_info):
        param, grad = param_info.blob, param_info.grad
        if self.alpha <= 0:
            return
        lr, _ = self._lr(net, param_init_net, self.alpha)
        moment = param_init_net.ConstantFill([param], str(param) + "_squared_moment",
                                             value=0.0)
        moment_update = param_init_net.ConstantFill(
            [param], str(param) + "_squared_moment_update", value=0.0)
        self._aux_params.local.extend([moment, moment_update])
        kwargs = dict(epsilon=self.epsilon, decay=self.decay, engine=self.engine)
        if isinstance(grad, core.GradientSlice):
            grad = self.dedup(net, self.sparse_dedup_aggregator, grad)
            net.SparseAdadelta([param, moment, moment_update, grad.indices, grad.values, lr],
                               [param, moment, moment_update], **kwargs)
        else:
            net.Adadelta([param, moment, moment_update, grad, lr],
                         [param, moment, moment_update], **kwargs)



class _FtrlBase(Optimizer):
    """What FTRL and Group Lasso FTRL share: their arguments and the ``<param>_<name>_nz``
    state (param.shape + [2]: n and z)."""

    _rate_attr = "alpha"

    def __init__(self, alpha=0.01, beta=1e-4, lambda1=0, lambda2=0,
                 sparse_dedup_aggregator=None, engine=""):
        super().__init__()
        self.alpha = alpha
        self.beta = beta
        self.lambda1 = lambda1
        self.lambda2 = lambda2
        self.sparse_dedup_aggregator = sparse_dedup_aggregator
        self.engine = engine

    def _nz(self, param_init_net, param, name):
        nz = param_init_net.ConstantFill([param], f"{param}_{name}_nz", extra_shape=[2],
                                         value=0.0)
        self._aux_params.local.append(nz)
        return nz

    def _args(self):
        return dict(engine=self.engine, alpha=self.alpha, beta=self.beta,
                    lambda1=self.lambda1, lambda2=self.lambda2)


class FtrlOptimizer(_FtrlBase):
    """FTRL-Proximal: Ftrl / SparseFtrl with ``<param>_ftrl_nz``."""

    def _run(self, net, param_init_net, param_info):
        param, grad = param_info.blob, param_info.grad
        if self.alpha <= 0:
            return
        nz = self._nz(param_init_net, param, "ftrl")
        if isinstance(grad, core.GradientSlice):
            grad = self.dedup(net, self.sparse_dedup_aggregator, grad)
            net.SparseFtrl([param, nz, grad.indices, grad.values], [param, nz], **self._args())
        else:
            net.Ftrl([param, nz, grad], [param, nz], **self._args())


class GFtrlOptimizer(_FtrlBase):
    """Group Lasso FTRL: GFtrl with ``<param>_gftrl_nz``."""

    def _run(self, net, param_init_net, param_info):
        param, grad = param_info.blob, param_info.grad
        if self.alpha <= 0:
            return
        nz = self._nz(param_init_net, param, "gftrl")
        net.GFtrl([param, nz, grad], [param, nz], **self._args())


class AdamOptimizer(Optimizer):
    """Adam: Adam / SparseAdam (``enableRAdam``) / RowWiseSparseAdam (``rowWise``) /
    SmartDecaySparseAdam (``use_smart_decay``), with ``<param>_first_moment`` and
    ``<param>_second_moment`` (``_avg_second_moment`` row-wise); ``use_lr_adaption`` adds
    LearningRateAdaption from the effective gradient."""

    _rate_attr = "alpha"

    def __init__(self, alpha=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8, policy="fixed",
                 use_lr_adaption=False, lr_alpha=0.01, normalized_lr_adaption=True,
                 sparse_dedup_aggregator=None, rowWise=False, engine="",  # noqa: N803
                 enableRAdam=False, use_smart_decay=False, **kwargs):  # noqa: N803
        super().__init__()
        self.alpha = alpha
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.policy = policy
        self.use_lr_adaption = use_lr_adaption
        self.lr_alpha = lr_alpha
        self.normalized_lr_adaption = normalized_lr_adaption
        self.sparse_dedup_aggregator = sparse_dedup_aggregator
        self.rowWise = rowWise
        self.engine = engine
        self.enableRAdam = enableRAdam
        if use_smart_decay:
            for flag, name in ((rowWise, "rowWise Adam"), (enableRAdam, "RAdam")):
                if flag:
                    raise NotImplementedError(f"Smart decay is not implemented for {name}.")
            if use_lr_adaption:
                raise NotImplementedError("Smart decay is not implemented with lr_adaption.")
        self.use_smart_decay = use_smart_decay
        self.init_kwargs = kwargs

    def _run(self, net, param_init_net, param_info):
        param, grad = param_info.blob, param_info.grad
        if self.alpha <= 0:
            return
        lr, iteration = self._lr(net, param_init_net, self.alpha)
        m1 = param_init_net.ConstantFill([param], param + "_first_moment", value=0.0)
        if self.rowWise:
            m2 = _param_rows(param_init_net, param, "_avg_second_moment", value=0.0)
        else:
            m2 = param_init_net.ConstantFill([param], param + "_second_moment", value=0.0)
        outputs = [param, m1, m2]
        if self.use_smart_decay:
            last_seen = _param_rows(param_init_net, param, "_last_seen", value=0,
                                    dtype=core.DataType.INT64)
            self._aux_params.local.append(last_seen)
            outputs.append(last_seen)
        self._aux_params.shared.append(iteration)
        self._aux_params.local.extend([m1, m2])
        if self.rowWise:
            assert isinstance(grad, core.GradientSlice), (
                "If SparseAdam with rowWise=True, gradient must be a gradientslice. PLease "
                "ensure that rowWise is not enabled for the dense Adam optimizer, as it is "
                "not supported.")
        if self.use_lr_adaption:
            effective_grad = str(param) + "_effective_grad"
            outputs.append(effective_grad)
        args = dict(beta1=self.beta1, beta2=self.beta2, epsilon=self.epsilon)
        if isinstance(grad, core.GradientSlice):
            grad = self.dedup(net, self.sparse_dedup_aggregator, grad)
            if self.rowWise:
                assert not self.enableRAdam, \
                    "Currently, RowWiseSparseAdam is not supported by RAdam!"
                net.RowWiseSparseAdam([param, m1, m2, grad.indices, grad.values, lr,
                                       iteration], outputs, **args)
            elif self.use_smart_decay:
                net.SmartDecaySparseAdam([param, m1, m2, last_seen, grad.indices, grad.values,
                                          lr, iteration], outputs, **args)
            else:
                net.SparseAdam([param, m1, m2, grad.indices, grad.values, lr, iteration],
                               outputs, enableRAdam=self.enableRAdam, **args)
            adaption_grad = grad.values
        else:
            net.Adam([param, m1, m2, grad, lr, iteration], outputs, **args)
            adaption_grad = grad
        if self.use_lr_adaption:
            net.LearningRateAdaption([lr, adaption_grad, effective_grad], [lr],
                                     lr_alpha=self.lr_alpha,
                                     normalized_lr_adaption=self.normalized_lr_adaption)



class DecayAdagradOptimizer(Optimizer):
    """DecayAdagrad for dense gradients (``<param>_first_mo1ment`` -- Caffe2's spelling --
    and ``<param>_second_moment``), SparseAdagrad for sparse ones."""

    _rate_attr = "alpha"

    def __init__(self, alpha=0.01, beta1=0.0, beta2=0.999, epsilon=0.1, weight_decay=0.0,
                 ema_options=None, bias_correction_first=True, policy="fixed", engine="",
                 **kwargs):
        super().__init__()
        self.alpha = alpha
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weight_decay = weight_decay
        self.bias_correction_first = bias_correction_first
        self.policy = policy
        self.engine = engine
        self.init_kwargs = kwargs
        AdagradOptimizer._process_ema_options(self, ema_options)
        if self.ema_teacher_enabled:  # Caffe2 read the teacher's alpha from "ema_alpha"
            self.ema_teacher_alpha = ema_options.get("ema_alpha", None)

    def set_mapping_for_param2ema_teacher_param(self, param_mapping):
        self.param2ema_teacher_param = param_mapping

    def _run(self, net, param_init_net, param_info):
        param, grad = param_info.blob, param_info.grad
        if self.alpha <= 0:
            return
        lr, iteration = self._lr(net, param_init_net, self.alpha)
        if isinstance(grad, core.GradientSlice):
            squared_sum = param_init_net.ConstantFill([param], param + "_squared_sum",
                                                      value=0.0)
            self._aux_params.local.append(squared_sum)
            net.SparseAdagrad([param, squared_sum, grad.indices, grad.values, lr],
                              [param, squared_sum], epsilon=self.epsilon)
            return
        m1 = param_init_net.ConstantFill([param], param + "_first_mo1ment", value=0.0)
        m2 = param_init_net.ConstantFill([param], param + "_second_moment", value=0.0)
        self._aux_params.shared.append(iteration)
        self._aux_params.local.extend([m1, m2])
        net.DecayAdagrad([param, m1, m2, grad, lr, iteration], [param, m1, m2],
                         beta1=self.beta1, beta2=self.beta2, epsilon=self.epsilon,
                         weight_decay=self.weight_decay,
                         bias_correction_first=self.bias_correction_first)
        self.weight_scale = None
        AdagradOptimizer._add_averaging(self, net, param_init_net, param, iteration, None)



class YellowFinOptimizer(Optimizer):
    """YellowFin: momentum SGD tuning its own learning rate and momentum per parameter
    (https://arxiv.org/abs/1706.03471)."""

    _rate_attr = "alpha"

    def __init__(self, alpha=0.1, mu=0.0, beta=0.999, curv_win_width=20, zero_debias=True,
                 epsilon=0.1 ** 6, policy="fixed", sparse_dedup_aggregator=None, **kwargs):
        super().__init__()
        self.alpha = alpha
        self.mu = mu
        self.beta = beta
        self.curv_win_width = curv_win_width
        self.zero_debias = zero_debias
        self.epsilon = epsilon
        self.policy = policy
        self.sparse_dedup_aggregator = sparse_dedup_aggregator
        self.init_kwargs = kwargs

    def _run(self, net, param_init_net, param_info):
        scalars_memory_size = 5  # the persistent scalars of the YellowFin op
        param, grad = param_info.blob, param_info.grad
        fill = param_init_net.ConstantFill
        moment = fill([param], param + "_moment", value=0.0)
        curv_win = fill([], param + "_curv_win", shape=[self.curv_win_width], value=0.0)
        g_avg = fill([param], param + "_g_avg", value=0.0)
        g2_avg = fill([param], param + "_g2_avg", value=0.0)
        lr_avg = fill([], param + "_lr_avg", shape=[1], value=self.alpha)
        mu_avg = fill([], param + "_mu_avg", shape=[1], value=self.mu)
        scalars_memory = fill([], param + "_scalars_memory", shape=[scalars_memory_size],
                              value=0.0)
        assert self.alpha > 0
        assert not isinstance(grad, core.GradientSlice), \
            "YellowFin does not support sparse gradients"
        iteration = utils.BuildUniqueMutexIter(param_init_net, net, iter_val=0)
        self._aux_params.shared.append(iteration)
        self._aux_params.local.extend([moment, lr_avg, mu_avg, curv_win, g_avg, g2_avg,
                                   scalars_memory])
        state = [param, moment, lr_avg, mu_avg, curv_win, g_avg, g2_avg, scalars_memory]
        net.YellowFin(state + [grad, iteration], state, beta=self.beta, epsilon=self.epsilon,
                      curv_win_width=self.curv_win_width, zero_debias=self.zero_debias)



class RmsPropOptimizer(Optimizer):
    """RMSProp: RmsProp then MomentumSGDUpdate of the step (dense gradients only)."""

    _rate_attr = "alpha"

    def __init__(self, alpha=0.01, decay=0.9, momentum=0.0, epsilon=1e-5, policy="fixed",
                 engine="", **kwargs):
        super().__init__()
        self.alpha = alpha
        self.decay = decay
        self.momentum = momentum
        self.epsilon = epsilon
        self.policy = policy
        self.engine = engine
        self.init_kwargs = kwargs

    def _run(self, net, param_init_net, param_info):
        param, grad = param_info.blob, param_info.grad
        assert self.alpha > 0
        assert not isinstance(grad, core.GradientSlice), \
            "RmsPropOptimizer doesn't support sparse gradients"
        one = _one(param_init_net)
        lr, _ = self._lr(net, param_init_net, -self.alpha)
        # Caffe2 passed "values=0.0" (ignored by ConstantFill, whose default is 0 too)
        grad_o = param_init_net.ConstantFill([param], str(param) + "_grad_o", value=0.0)
        ms = param_init_net.ConstantFill([param], str(param) + "_mean_squares", value=0.0)
        mom = param_init_net.ConstantFill([param], str(param) + "_momentum", value=0.0)
        self._aux_params.local.extend([ms, mom])
        net.RmsProp([grad, ms, mom, one], [grad_o, ms, mom],  # rate 1: lr is applied below
                    decay=self.decay, momentum=self.momentum, epsilon=self.epsilon,
                    engine=self.engine)
        net.MomentumSGDUpdate([grad_o, mom, lr, param], [grad_o, mom, param])



def _get_param_to_device(model):
    """{blob: DeviceOption} of the ops that write each blob, in the net and its init net."""
    param_to_device = core.InferBlobDevices(model.net)
    param_to_device.update(core.InferBlobDevices(model.param_init_net))
    return param_to_device


def get_param_device(param_name, grad, param_to_device=None, default_device=None):
    """The device of a parameter: of the op writing it, else of its gradient's, else
    ``default_device``; an error when none is known."""
    device = default_device
    param_to_device = param_to_device or {}
    if param_name in param_to_device:
        device = param_to_device[param_name]
    elif isinstance(grad, core.GradientSlice):
        if str(grad.values) in param_to_device:
            device = param_to_device[str(grad.values)]
        elif str(grad.indices) in param_to_device:
            device = param_to_device[str(grad.indices)]
    elif str(grad) in param_to_device:
        device = param_to_device[str(grad)]
    assert device is not None, f"Cannot infer device for {param_name}: no op creates it"
    return device


def get_lr_injection():
    """The current lr_injection (a multiplier of every learning rate; build with
    allow_lr_injection=True)."""
    return workspace.FetchBlob(_LEARNING_RATE_INJECTION)


def set_lr_injection(lr_injection_value):
    """Set lr_injection, the multiplier of every learning rate (allow_lr_injection=True)."""
    workspace.FeedBlob(_LEARNING_RATE_INJECTION,
                       np.array([float(lr_injection_value)], dtype=np.float32))


def _calc_norm_ratio(model, params, name_scope, param_to_device, max_gradient_norm):
    """clip_norm / max(global gradient norm, clip_norm): the factor of gradient clipping."""
    with core.NameScope(name_scope):
        grad_squared_sums = []
        for i, param in enumerate(params):
            device = get_param_device(str(param.blob), param.grad, param_to_device)
            with core.DeviceScope(device):
                grad = (param.grad.values if isinstance(param.grad, core.GradientSlice)
                        else param.grad)
                grad_squared_sum = model.net.SumSqrElements(grad, f"grad_{i}_squared_sum")
                grad_squared_sums.append(model.net.EnsureCPUOutput(grad_squared_sum))
        with core.DeviceScope(core.DeviceOption(caffe2_pb2.CPU)):
            full_sum = model.net.Sum(grad_squared_sums, "grad_squared_full_sum")
            global_norm = model.net.Pow(full_sum, "global_norm", exponent=0.5)
            clip_norm = model.param_init_net.ConstantFill([], "clip_norm", shape=[],
                                                          value=float(max_gradient_norm))
            max_norm = model.net.Max([global_norm, clip_norm], "max_norm")
            return model.net.Div([clip_norm, max_norm], "norm_ratio")


def _build(model, optimizer, weights_only=False, use_param_info_optim=True,
           max_gradient_norm=None, allow_lr_injection=False):
    """Run ``optimizer`` (or a parameter's own) over the model's parameters with
    gradients, each under the device of the op that makes it; returns ``optimizer``."""
    param_to_device = _get_param_to_device(model)
    model.Validate()
    params = [info for info in model.GetOptimizationParamInfo()
              if not weights_only or info.blob in model.weights]
    lr_multiplier = None
    if max_gradient_norm is not None:
        lr_multiplier = _calc_norm_ratio(model, params, "norm_clipped_grad_update",
                                         param_to_device, max_gradient_norm)
    if allow_lr_injection:
        if not model.net.BlobIsDefined(_LEARNING_RATE_INJECTION):
            lr_injection = model.param_init_net.ConstantFill([], _LEARNING_RATE_INJECTION,
                                                             shape=[1], value=1.0)
        else:
            lr_injection = _LEARNING_RATE_INJECTION
        if lr_multiplier is None:
            lr_multiplier = lr_injection
        else:
            lr_multiplier = model.net.Mul([lr_multiplier, lr_injection], "lr_multiplier",
                                          broadcast=1)
    optimizer.add_lr_multiplier(lr_multiplier)
    for param_info in params:
        device = get_param_device(str(param_info.blob), param_info.grad, param_to_device)
        with core.DeviceScope(device):
            if param_info.optimizer and use_param_info_optim:
                param_info.optimizer(model.net, model.param_init_net, param_info)
            else:
                optimizer(model.net, model.param_init_net, param_info)
    return optimizer


def add_weight_decay(model, weight_decay):
    """L2 regularization of the weights: grad += weight_decay * param (before the optimizer)."""
    _build(model, WeightDecayBuilder(weight_decay=weight_decay), weights_only=True,
           use_param_info_optim=False)


def _builder(optimizer_class, rate_name):
    """A build_<optimizer>(model, base_learning_rate, ...) in Caffe2's form."""
    def build(model, base_learning_rate, max_gradient_norm=None, allow_lr_injection=False,
              **kwargs):
        kwargs.pop("parameters", None)  # accepted and unused, as in Caffe2
        optimizer = optimizer_class(**{rate_name: base_learning_rate}, **kwargs)
        return _build(model, optimizer, max_gradient_norm=max_gradient_norm,
                      allow_lr_injection=allow_lr_injection)
    return build


build_sgd = _builder(SgdOptimizer, "base_learning_rate")
build_multi_precision_sgd = _builder(MultiPrecisionSgdOptimizer, "base_learning_rate")
build_adagrad = _builder(AdagradOptimizer, "alpha")
build_wngrad = _builder(WngradOptimizer, "alpha")
build_storm = _builder(StormOptimizer, "lr")
build_adadelta = _builder(AdadeltaOptimizer, "alpha")
build_adam = _builder(AdamOptimizer, "alpha")
build_decay_adagrad = _builder(DecayAdagradOptimizer, "alpha")
build_rms_prop = _builder(RmsPropOptimizer, "alpha")
for _name, _fn in list(globals().items()):
    if _name.startswith("build_") and _fn.__name__ == "build":
        _fn.__name__ = _fn.__qualname__ = _name


def build_fp16_sgd(model, base_learning_rate, **kwargs):
    return _build(model, FP16SgdOptimizer(base_learning_rate, **kwargs))


def build_ftrl(model, engine="SIMD", **kwargs):
    """FTRL over every parameter; Caffe2's default engine "SIMD" is required to exist."""
    if engine == "SIMD":
        assert core.IsOperator("Ftrl_ENGINE_SIMD")
        assert core.IsOperator("SparseFtrl_ENGINE_SIMD")
    return _build(model, FtrlOptimizer(engine=engine, **kwargs))


def build_gftrl(model, engine="", **kwargs):
    if engine == "SIMD":
        assert core.IsOperator("GFtrl_ENGINE_SIMD")
    return _build(model, GFtrlOptimizer(engine=engine, **kwargs))


def build_yellowfin(model, base_learning_rate=0.1, **kwargs):
    return _build(model, YellowFinOptimizer(alpha=base_learning_rate, **kwargs))
