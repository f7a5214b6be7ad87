"""Net executors: a NetDef instantiated once in a workspace, then run many times.

Every executor type Caffe2 knew ("simple", "dag", "async_scheduling", ...)
runs its ops in order here: the results are the same, only Caffe2's
parallel schedulers are not reproduced.  An op without a DeviceOption takes
the net's.  Operators are created -- schemas verified, kernels resolved,
arguments parsed -- in ``__init__``, never in ``run``; ops that fuse
(caffe2lite/fusion.py) are fused then too.

A net run more than once is compiled, on its second run, into straight-line
Python with a few lines per op (``compile_schedule``): no loop, no per-op
unpacking, blob names as constants, the kernel contract checked inline.
That keeps the executor's cost near a function call per op, which is what
makes a net of small ops as fast as eager PyTorch; a net run once
(RunNetOnce) is not worth compiling and runs through the plain loop.

A net created for inference (an op with ``is_test``, or a Predictor's) is
rewritten first (runtime/rewrites.py); the rewrites and fusions that rely on
no other net writing some blobs are planned again if the workspace's write
log (runtime/write_log.py) says one now does -- one integer comparison per
run when nothing changed.  ``release_intermediates`` (a Predictor's memory
option) empties each blob that only this net writes and reads as soon as its
last reader has run, so its memory goes back to the allocator for the next
op instead of staying held until the next run overwrites it.

A run given a deadline (``RunNet(..., timeout=)``) goes through variants of
both that look at the clock before each op and stop there with
DeadlineExceeded; the runs without one never look at it.
"""

from __future__ import annotations

import itertools
import time

import numpy as np

from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime import fusion, rewrites, safety
from caffe2lite.runtime.errors import Caffe2LiteError, DeadlineExceeded, NetError
from caffe2lite.runtime.op_context import add_origin
from caffe2lite.runtime.operator import Operator, check_outputs

_writer_ids = itertools.count(1)
KNOWN_TYPES = ("", "simple", "dag", "async_dag", "async_scheduling", "async_simple",
               "parallel", "singlethread_async", "prof_dag")


def with_net_device(net_def):
    """A copy of net_def whose ops without a DeviceOption carry the net's (Caffe2 does this).

    An op whose DeviceOption holds only ``extra_info`` tags -- the auto-generated
    gradient ``Sum`` of a net whose ops set no device (``is_auto_gen_sum_ops:1``) --
    takes the net's device too and keeps its tags; Caffe2 left it on the CPU, where it
    failed on GPU inputs.
    """
    net_def = caffe2_pb2.NetDef.FromString(net_def.SerializeToString()) \
        if isinstance(net_def, caffe2_pb2.NetDef) else net_def
    if net_def.HasField("device_option"):
        for op in net_def.op:
            if not op.HasField("device_option"):
                op.device_option.CopyFrom(net_def.device_option)
            elif [f.name for f, _ in op.device_option.ListFields()] == ["extra_info"]:
                tags = list(op.device_option.extra_info)
                op.device_option.CopyFrom(net_def.device_option)
                op.device_option.extra_info.extend(
                    t for t in tags if t not in op.device_option.extra_info)
    return net_def


class SimpleNet:
    """Runs a NetDef's operators one after another."""

    def __init__(self, net_def, workspace, create_outputs: bool = True, predictor: bool = False,
                 data_inputs=(), release_intermediates: bool = False):
        """``predictor``: a Predictor's predict net (created for inference; only its
        external outputs are seen); ``data_inputs``: the blobs fed for every run."""
        safety.check_net_nesting(net_def, f'net "{net_def.name}"')
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
        self.operators = ops  # one per op of the NetDef, as BenchmarkNet reports them
        if create_outputs:  # Caffe2 creates every output blob with the net.
            for name in produced:
                workspace.create_blob(name)
        self.writer_id = next(_writer_ids)
        self._log = getattr(workspace, "write_log", None)
        if create_outputs and self._log is not None:  # a created net may run at any time
            self._log.note_net(self.writer_id, ops)
        self.predictor = predictor
        self.inference = predictor or rewrites.for_inference(self.net_def)
        self._data_inputs = tuple(data_inputs)
        self._release = release_intermediates
        self._plan()

    def _plan(self) -> None:
        """Steps, rewrites, fusions and releases from the created operators (again when
        the write log says an assumption broke: _check_writes)."""
        log = self._log
        steps, self.rewrites, depends = list(self.operators), [], set()
        blobs = {name for op in self.operators for name in op.inputs + op.outputs}
        if self.inference and rewrites.enabled():
            outside = set() if log is None else \
                log.written_by_others(blobs, self.writer_id, log.epoch)
            steps, self.rewrites, depends = rewrites.plan(
                self.operators, self.net_def, outside, self._data_inputs,
                self.predictor)
        outside_in_place = set() if log is None else \
            log.written_by_others(blobs, self.writer_id, log.epoch, in_place_only=True)
        self.steps, shared = fusion.plan(steps, outside_in_place)
        self.fusions = [step.positions for step in self.steps
                        if not isinstance(step, (Operator, rewrites.RewrittenStep))]
        self._depends = depends if log is not None else set()
        self._shared = shared if log is not None else set()
        self._watching = bool(self._depends or self._shared)
        self._planned_at = self._seen_epoch = log.epoch if log is not None else 0
        self.releases = release_points(self.steps, self.net_def) if self._release else {}
        self.source = None  # the compiled run function's code, once compiled
        self._compiled = None
        self._compiled_until = None  # the variant that stops at a deadline

    def _check_writes(self) -> None:
        """Plan again if another net now writes a blob the steps rely on."""
        log = self._log
        if log.written_by_others(self._depends, self.writer_id, self._planned_at) or \
                log.written_by_others(self._shared, self.writer_id, self._planned_at,
                                      in_place_only=True):
            self._plan()
        self._seen_epoch = log.epoch

    def run(self, deadline: float | None = None) -> None:
        """Run every op once; the failing op's error names it and its net.

        ``deadline`` (a time.monotonic() value): stop with DeadlineExceeded before
        the first op that would start after it.
        """
        blobs = self.workspace.blob_dict
        if self._watching and self._log.epoch != self._seen_epoch:
            self._check_writes()
        if deadline is not None:
            return self._run_until(blobs, deadline)
        if self._compiled is not None:
            return self._compiled(blobs)
        if self.source is None:  # first run: the loop; compile for the runs after
            self.source = ""
            return run_steps(self.steps, blobs, self.releases)
        self.source, self._compiled = compile_schedule(self.steps, self.name,
                                                       releases=self.releases)
        return self._compiled(blobs)

    def _run_until(self, blobs, deadline: float) -> None:
        if self._compiled_until is not None:
            return self._compiled_until(blobs, deadline)
        if self.source is None:
            self.source = ""
        elif self.source:  # run before: compile, as the plain path does on its second run
            self._compiled_until = compile_schedule(self.steps, self.name, with_deadline=True,
                                                    releases=self.releases)[1]
            return self._compiled_until(blobs, deadline)
        return run_steps_until(self.steps, blobs, deadline, self.releases)

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


def release_points(steps, net_def) -> dict:
    """{step index: blobs to empty after it}: every blob the steps write before any
    reads it (so no value carries over to the next run) and that is neither an
    external input nor an external output, released after the last step touching it."""
    keep = set(net_def.external_input) | set(net_def.external_output)
    first_read, first_write, last = {}, {}, {}
    for k, step in enumerate(steps):
        for name in step.inputs:
            first_read.setdefault(name, k)
            last[name] = k
        for name in step.outputs:
            first_write.setdefault(name, k)
            last[name] = k
    points: dict[int, list[str]] = {}
    for name, k in first_write.items():
        if name not in keep and first_read.get(name, k + 1) > k:
            points.setdefault(last[name], []).append(name)
    return points


def run_steps(steps, blobs, releases=None) -> None:
    """Run ``steps`` (Operators and fused steps) in order on ``blobs``: the reference
    semantics that compile_schedule's functions reproduce line for line."""
    for k, step in enumerate(steps):
        if releases and k in releases:
            _run_and_release(step, blobs, releases[k])
            continue
        if not isinstance(step, Operator):
            step.run(blobs)
            continue
        try:
            results = step.kernel(step.ctx, *[blobs[n] for n in step.inputs])
            results = check_outputs(step, results)
        except Exception as exc:
            err = step.failure(exc, blobs)
            if err is exc:
                raise
            raise err from exc
        for name, value in zip(step.outputs, results):
            blobs[name] = value


def _run_and_release(step, blobs, names) -> None:
    run_steps((step,), blobs)
    for name in names:
        blobs[name] = None


def run_steps_until(steps, blobs, deadline: float, releases=None) -> None:
    """run_steps, looking at the clock before each step."""
    for k, step in enumerate(steps):
        if time.monotonic() > deadline:
            raise deadline_error(step)
        if releases and k in releases:
            _run_and_release(step, blobs, releases[k])
        else:
            run_steps((step,), blobs)


def deadline_error(step) -> DeadlineExceeded:
    """The error of a run whose deadline passed before ``step`` (it names the op)."""
    return safety.deadline_error(step.where)


def compile_schedule(steps, net_name: str, with_deadline: bool = False, releases=None):
    """(source, function) running ``steps`` on a blob dict, one block of lines per step.

    For an Operator ``k`` with inputs a, b and output y the block reads::

        at = k
        r = kernel_k(ctx_k, blobs['a'], blobs['b'])
        if r.__class__ is not tuple or len(r) != 1 or r[0].__class__ is not ndarray:
            r = check_outputs(op_k, r)
        blobs['y'] = r[0]

    i.e. run_steps's work without its per-op overhead: the common case (a tuple
    of NumPy arrays) costs three identity tests, anything else goes through
    check_outputs as before.  A failure is re-raised by the failing step's
    ``failure``, exactly as in run_steps; outputs are written only after the
    check, so a failing op changes no blob.  CPython compiles this at about
    90 us per op (2 s for a 20,000-op net, once), whether in one function or
    in several.

    ``with_deadline``: the function is ``run(blobs, deadline)`` and each block
    starts with ``if now() > deadline: raise deadline_error(step)``.  ``releases``
    ({step index: names}, release_points) adds ``blobs[name] = None`` after a block.
    """
    releases = releases or {}
    env = {"ndarray": np.ndarray, "check_outputs": check_outputs, "steps": steps,
           "now": time.monotonic, "deadline_error": deadline_error, "Expired": DeadlineExceeded}
    lines = ["def run(blobs, deadline):" if with_deadline else "def run(blobs):",
             "    at = 0", "    try:", "        pass"]
    for k, step in enumerate(steps):
        lines.append(f"        at = {k}")
        if with_deadline:
            lines.append(f"        if now() > deadline: raise deadline_error(steps[{k}])")
        if not isinstance(step, Operator):
            env[f"step_{k}"] = step
            lines.append(f"        step_{k}.run(blobs)")
        else:
            env[f"kernel_{k}"], env[f"ctx_{k}"], env[f"op_{k}"] = step.kernel, step.ctx, step
            args = "".join(f", blobs[{name!r}]" for name in step.inputs)
            lines.append(f"        r = kernel_{k}(ctx_{k}{args})")
            tests = [f"len(r) != {len(step.outputs)}"] + \
                [f"r[{j}].__class__ is not ndarray" for j in range(len(step.outputs))]
            lines.append(f"        if r.__class__ is not tuple or {' or '.join(tests)}:")
            lines.append(f"            r = check_outputs(op_{k}, r)")
            lines += [f"        blobs[{name!r}] = r[{j}]" for j, name in enumerate(step.outputs)]
        lines += [f"        blobs[{name!r}] = None" for name in releases.get(k, ())]
    lines += ["    except Exception as exc:"]
    if with_deadline:
        lines += ["        if exc.__class__ is Expired:", "            raise"]
    lines += ["        err = steps[at].failure(exc, blobs)",
              "        if err is exc:",
              "            raise",
              "        raise err from exc"]
    source = "\n".join(lines) + "\n"
    exec(compile(source, f"<caffe2lite net {net_name!r}>", "exec"), env)  # noqa: S102
    return source, env["run"]


def create_net(net_def, workspace, create_outputs: bool = True, **options):
    """Instantiate net_def in workspace (every executor type runs sequentially).

    ``create_outputs=False`` (RunNetOnce) skips creating empty output blobs up
    front, so a net that fails leaves no empty blobs behind.  ``options``: those
    of SimpleNet (``predictor``, ``data_inputs``, ``release_intermediates``).
    """
    return SimpleNet(net_def, workspace, create_outputs, **options)
