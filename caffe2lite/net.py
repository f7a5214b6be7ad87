"""Net executors: a NetDef instantiated once in a workspace, then run many times.

Every executor type Caffe2 knew ("simple", "dag", "async_scheduling", ...)
runs its ops in order here: the results are the same, only Caffe2's
parallel schedulers are not reproduced.  An op without a DeviceOption takes
the net's.  Operators are created -- schemas verified, kernels resolved,
arguments parsed -- in ``__init__``, never in ``run``.
"""

from __future__ import annotations

import time

import numpy as np

from caffe2lite.errors import Caffe2LiteError, NetError
from caffe2lite.operator import Operator, add_origin, check_outputs
from caffe2lite.proto import caffe2_pb2

KNOWN_TYPES = ("", "simple", "dag", "async_dag", "async_scheduling", "async_simple",
               "parallel", "singlethread_async", "prof_dag")


def with_net_device(net_def):
    """A copy of net_def whose ops without a DeviceOption carry the net's (Caffe2 does this)."""
    net_def = caffe2_pb2.NetDef.FromString(net_def.SerializeToString()) \
        if isinstance(net_def, caffe2_pb2.NetDef) else net_def
    if net_def.HasField("device_option"):
        for op in net_def.op:
            if not op.HasField("device_option"):
                op.device_option.CopyFrom(net_def.device_option)
    return net_def


class SimpleNet:
    """Runs a NetDef's operators one after another."""

    def __init__(self, net_def, workspace, create_outputs: bool = True):
        if net_def.type not in KNOWN_TYPES:
            raise NetError(f'net "{net_def.name}": unknown net type "{net_def.type}", '
                           f"expected one of {[t for t in KNOWN_TYPES if t]}")
        self.net_def = with_net_device(net_def)
        self.name = net_def.name
        self.workspace = workspace
        produced: set[str] = set()
        ops = []
        for position, op_def in enumerate(self.net_def.op):
            try:
                ops.append(Operator(op_def, workspace, position, self.name, produced))
            except Caffe2LiteError as e:
                raise add_origin(e, op_def, position, self.name)
            produced.update(op_def.output)
        self.operators = ops
        if create_outputs:  # Caffe2 creates every output blob with the net.
            for name in produced:
                workspace.create_blob(name)
        self._steps = [(op, op.kernel, op.ctx, op.inputs, op.outputs) for op in ops]

    def run(self) -> None:
        """Run every op once; the failing op's error names it and its net."""
        blobs = self.workspace.blob_dict
        for op, kernel, ctx, inputs, outputs in self._steps:
            try:
                results = kernel(ctx, *[blobs[n] for n in inputs])
                if type(results) is not tuple or len(results) != len(outputs):
                    results = check_outputs(op, results)
                else:
                    for value in results:
                        if value.__class__ is not np.ndarray:
                            results = check_outputs(op, results)
                            break
            except Exception as exc:
                raise op.failure(exc, blobs) from exc
            for name, value in zip(outputs, results):
                blobs[name] = value

    def benchmark(self, warmup_runs: int, main_runs: int, run_individual: bool) -> list[float]:
        """Caffe2's TEST_Benchmark: [ms per run of the whole net] + [ms per op run alone]."""
        if warmup_runs < 0 or main_runs <= 0:
            raise NetError(f'net "{self.name}": BenchmarkNet needs warmup_runs >= 0 and '
                           f"main_runs > 0, got {warmup_runs} and {main_runs}")
        for _ in range(warmup_runs):
            self.run()
        start = time.perf_counter()
        for _ in range(main_runs):
            self.run()
        timings = [(time.perf_counter() - start) * 1e3 / main_runs]
        if run_individual:
            blobs = self.workspace.blob_dict
            for op in self.operators:
                start = time.perf_counter()
                for _ in range(main_runs):
                    op.run(blobs)
                timings.append((time.perf_counter() - start) * 1e3 / main_runs)
        return timings

    def Proto(self):
        return self.net_def


def create_net(net_def, workspace, create_outputs: bool = True):
    """Instantiate net_def in workspace (every executor type runs sequentially).

    ``create_outputs=False`` (RunNetOnce) skips creating empty output blobs up
    front, so a net that fails leaves no empty blobs behind.
    """
    return SimpleNet(net_def, workspace, create_outputs)
