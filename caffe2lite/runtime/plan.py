"""Running a PlanDef: Caffe2's plan executor (caffe2/core/plan_executor.cc).

A plan lists nets and a sequence of execution steps.  A step runs either its
networks or its substeps (never both), ``num_iter`` times (unset = once), or
until its ``should_stop_blob`` -- a scalar bool blob checked after every net
or substep -- becomes true (``only_once``: at most one pass).  Substeps of a
``concurrent_substeps`` step run on threads; the first error stops the
others at their next iteration and is re-raised.  ``report_net`` (every
``report_interval`` seconds) and substeps with ``run_every_ms`` run on a
side thread while their step runs, and once more when it ends.

As in Caffe2, each top-level step creates the nets it (and its substeps)
use when it starts -- once per run, overwriting a workspace net of the same
name -- so that blobs made by earlier steps exist.  Unlike Caffe2, the
whole plan is checked before anything runs: its structure, the nets its
steps name, every operator of those nets (schema, kernel, arguments, input
blobs that nothing would produce) and the stop blobs.  A bad plan raises
and leaves the workspace as it was.

A long step (``num_iter`` > 1, or stopped by a blob) shows a tqdm progress
bar with iterations per second when stderr is a terminal, unless quiet is
asked for: ``RunPlan(plan, quiet=True)``, ``plan.set_quiet(True)`` or the
environment variable ``CAFFE2LITE_QUIET=1``.

Guards for plans from strangers (caffe2lite/safety.py): steps nested deeper
than ``safety.MAX_NESTING`` are refused up front; with a
``max_plan_iterations`` limit, a plan whose iteration counts multiply past it
is refused up front and one that a stop blob keeps going stops at it; with a
``timeout``, the plan stops at the next op (or iteration) once it runs out.
"""

from __future__ import annotations

import os
import sys
import threading
import time

import numpy as np

from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime import plan_builder, safety
from caffe2lite.runtime.devices import cpu_context
from caffe2lite.runtime.errors import EnforceError, PlanError, ProtoParseError
from caffe2lite.runtime.net import SimpleNet
from caffe2lite.runtime.protoio import as_message

_quiet = [os.environ.get("CAFFE2LITE_QUIET", "") not in ("", "0")]
CONCURRENT_EXCEPTION_TIMEOUT = 60.0
"""Seconds to wait for concurrent substeps to stop after one failed (Caffe2's flag)."""


def set_quiet(quiet: bool) -> None:
    """Turn plan progress bars off (True) or back on for terminals (False)."""
    _quiet[0] = bool(quiet)


def is_quiet() -> bool:
    return _quiet[0]


def as_plan_def(plan) -> caffe2_pb2.PlanDef:
    """A PlanDef from a PlanDef, core.Plan, core.ExecutionStep or serialized plan."""
    if isinstance(plan, plan_builder.ExecutionStep):
        plan = plan_builder.Plan(plan)
    try:
        return as_message(plan, caffe2_pb2.PlanDef, "RunPlan")
    except ProtoParseError:
        raise  # malformed bytes: its own message says where
    except ValueError:
        raise PlanError(f"RunPlan: expected a PlanDef, core.Plan, core.ExecutionStep or "
                        f"serialized PlanDef, got {type(plan).__name__}") from None


def run_plan(workspace, plan, quiet: bool | None = None, timeout: float | None = None) -> bool:
    """Check the whole plan, then run it in ``workspace``; returns True (errors raise)."""
    deadline = safety.deadline_after(timeout, "RunPlan")
    PlanExecutor(workspace, as_plan_def(plan), is_quiet() if quiet is None else quiet,
                 deadline).run()
    return True


class BackgroundPlan:
    """A plan running on its own thread: Caffe2's RunPlanInBackground handle.

    ``is_done()`` and ``is_succeeded()`` are Caffe2's; ``wait()`` and
    ``error`` (the exception that ended the plan, None if none) are
    caffe2lite's, so a caller need not poll to learn why a plan failed.
    """

    def __init__(self, executor: "PlanExecutor"):
        self.error: BaseException | None = None
        self._where = executor.where
        self._thread = threading.Thread(target=self._run, args=(executor,), daemon=True,
                                        name=f"caffe2lite {executor.where}")
        self._thread.start()

    def _run(self, executor) -> None:
        try:
            executor.run()
        except BaseException as exc:  # kept for is_succeeded / error, as Caffe2 kept it
            self.error = exc

    def is_done(self) -> bool:
        return not self._thread.is_alive()

    def is_succeeded(self) -> bool:
        """Whether the finished plan ran to the end; asking before it is done is an error."""
        if not self.is_done():
            raise PlanError(f"{self._where} is still running in the background: ask "
                            f"is_done() (or wait()) before is_succeeded()")
        return self.error is None

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the plan ends or ``timeout`` seconds pass; True once it has ended."""
        self._thread.join(timeout)
        return self.is_done()


def run_plan_in_background(workspace, plan, timeout: float | None = None) -> BackgroundPlan:
    """Check the whole plan now (errors raise here), then run it on a thread, quietly."""
    deadline = safety.deadline_after(timeout, "RunPlanInBackground")
    return BackgroundPlan(PlanExecutor(workspace, as_plan_def(plan), quiet=True,
                                       deadline=deadline))


class _Compiled:
    """One step with its nets created and substeps compiled (created once per run)."""

    def __init__(self, step, path):
        self.step = step
        self.path = path
        self.nets = []
        self.recurring = []
        self.reporting = []
        self.report_net = None
        self.stop_blob = step.should_stop_blob if step.HasField("should_stop_blob") else None
        self.failure = threading.Event()
        if self.stop_blob is None:
            count = step.num_iter if step.HasField("num_iter") else 1
            self.continue_test = lambda it: it < count
        elif step.only_once:
            self.continue_test = lambda it: it == 0
        else:
            self.continue_test = lambda it: True

    @property
    def sequential(self) -> bool:
        step = self.step
        return (not step.concurrent_substeps or len(step.substep) <= 1) and \
            step.num_concurrent_instances <= 1

    @property
    def total(self) -> int | None:
        """Iterations expected, None when a blob decides; 1 for one pass."""
        if self.stop_blob is not None:
            return 1 if self.step.only_once else None
        return self.step.num_iter if self.step.HasField("num_iter") else 1


def _creates_undeclared_blobs(op) -> bool:
    """Load with load_all writes blobs that are not its outputs: anything may exist later."""
    return op.type == "Load" and any(a.name == "load_all" and a.i for a in op.arg)


class _ProbeWorkspace:
    """The real workspace, except that blobs the plan will produce count as present.

    Creating every referenced net against it checks schemas, kernels,
    arguments and inputs without touching the real workspace.
    """

    write_log = None  # a probe net never runs: it writes nothing (runtime/write_log.py)

    def __init__(self, workspace, known, permissive):
        self._ws, self._known, self._permissive = workspace, known, permissive

    def has_blob(self, name) -> bool:
        return self._permissive or name in self._known or self._ws.has_blob(name)

    def create_blob(self, name) -> bool:
        return True

    def __getattr__(self, name):
        return getattr(self._ws, name)


class PlanExecutor:
    """Validates a PlanDef at construction; ``run()`` executes it."""

    def __init__(self, workspace, plan_def, quiet: bool = False, deadline: float | None = None):
        self.ws = workspace
        self.plan = plan_def
        self.quiet = quiet
        self.deadline = deadline
        self.where = f'plan "{plan_def.name}"'
        limit = safety.limits_of(workspace).max_plan_iterations
        self.budget = None if limit is None else safety.IterationBudget(limit, self.where)
        self.net_defs = {}
        for net_def in plan_def.network:
            if net_def.name in self.net_defs:
                raise PlanError(f'{self.where}: Your plan contains networks of the same name '
                                f'"{net_def.name}", which should not happen.')
            self.net_defs[net_def.name] = net_def
        self.used_nets: list[str] = []
        self.stop_blobs: list[tuple[str, str]] = []
        total = 0
        for i, step in enumerate(plan_def.execution_step):
            count = self._check_step(step, self._path(None, step, i), 1)
            total = None if total is None or count is None else total + count
        if self.budget is not None and total is not None and total > self.budget.limit:
            raise PlanError(f"{self.where}: its steps would run {total} iterations, over "
                            f"the workspace's max_plan_iterations of {self.budget.limit}")
        self._check_nets()
        self._created: set[str] = set()
        self._bar_open = False

    # -- validation ----------------------------------------------------------
    @staticmethod
    def _path(parent, step, index):
        name = step.name or f"#{index}"
        return f"{parent}/{name}" if parent else name

    def _use_net(self, name, where):
        if name not in self.net_defs:
            raise PlanError(f"{where}: ExecutionStep uses undefined net '{name}' (nets in "
                            f"the plan: {sorted(self.net_defs) or 'none'})")
        if name not in self.used_nets:
            self.used_nets.append(name)

    def _check_step(self, step, path, depth) -> int | None:
        """Check one step and its substeps; returns the iterations it runs (None: a stop
        blob decides)."""
        where = f'{self.where} step "{path}"'
        if depth > safety.MAX_NESTING:
            raise PlanError(f"{where}: execution steps nested deeper than "
                            f"{safety.MAX_NESTING} levels are refused")
        if step.substep and step.network:
            raise PlanError(f"{where}: An ExecutionStep should either have substep or "
                            f"networks but not both ({len(step.substep)} substeps, "
                            f"networks {list(step.network)})")
        if step.HasField("should_stop_blob"):
            if step.HasField("num_iter"):
                raise PlanError(f"{where}: Must not specify num_iter if should_stop_blob "
                                f"is set (should_stop_blob '{step.should_stop_blob}', "
                                f"num_iter {step.num_iter})")
            if not step.substep and not step.network:
                raise PlanError(f"{where}: should_stop_blob '{step.should_stop_blob}' is "
                                f"checked after nets or substeps, and this step has neither: "
                                f"it would never stop")
            self.stop_blobs.append((step.should_stop_blob, where))
        elif step.only_once:
            raise PlanError(f"{where}: only_once needs a should_stop_blob (with num_iter, "
                            f"set num_iter=1 instead)")
        if step.create_workspace:
            raise PlanError(f"{where}: create_workspace (a child workspace per run) is not "
                            f"supported by caffe2lite")
        for name in step.network:
            self._use_net(name, where)
        if step.HasField("report_net"):
            if step.report_interval <= 0:
                raise PlanError(f"{where}: A report_interval (seconds, > 0) must be provided "
                                f"if report_net is set (report_net '{step.report_net}')")
            self._use_net(step.report_net, where)
        inner = 0
        for i, sub in enumerate(step.substep):
            count = self._check_step(sub, self._path(path, sub, i), depth + 1)
            if not sub.run_every_ms:
                inner = None if inner is None or count is None else inner + count
        if step.HasField("should_stop_blob") or inner is None:
            return None
        count = step.num_iter if step.HasField("num_iter") else 1
        return max(count, 0) * (1 + inner * max(1, step.num_concurrent_instances))

    def _check_nets(self):
        """Create every used net against a probe workspace: all op errors surface now."""
        nets = [self.net_defs[n] for n in self.used_nets]
        known, permissive = set(), False
        for net_def in nets:
            for op in net_def.op:
                known.update(op.output)
                permissive |= _creates_undeclared_blobs(op)
        probe = _ProbeWorkspace(self.ws, known, permissive)
        for net_def in nets:
            SimpleNet(net_def, probe)
        for blob, where in self.stop_blobs:
            if not (blob in known or self.ws.has_blob(blob)):
                raise PlanError(f"{where}: should_stop_blob '{blob}' does not exist in "
                                f"workspace '{self.ws.name}' and no net of the plan "
                                f"produces it")

    # -- compilation ---------------------------------------------------------
    def _net(self, name):
        if name not in self._created:
            self.ws.create_net(self.net_defs[name], overwrite=True)
            self._created.add(name)
        return self.ws.nets[name]

    def _compile(self, step, path) -> _Compiled:
        c = _Compiled(step, path)
        for i, sub in enumerate(step.substep):
            compiled = self._compile(sub, self._path(path, sub, i))
            if sub.run_every_ms:
                c.reporting.append(compiled)
            else:
                c.recurring.append(compiled)
        c.nets = [self._net(n) for n in step.network]
        if step.HasField("report_net"):
            c.report_net = self._net(step.report_net)
        if c.stop_blob is not None and not self.ws.has_blob(c.stop_blob):
            raise PlanError(f'{self.where} step "{path}": should_stop_blob '
                            f"'{c.stop_blob}' does not exist")
        return c

    # -- execution -----------------------------------------------------------
    def run(self) -> None:
        for i, step in enumerate(self.plan.execution_step):
            compiled = self._compile(step, self._path(None, step, i))
            self._execute(compiled, lambda it: True)

    def _should_stop(self, c) -> bool:
        if c.stop_blob is None:
            return False
        value = self.ws.blob_dict.get(c.stop_blob)
        if value is None:  # Caffe2: an uninitialized blob does not stop
            return False
        host = None if isinstance(value, (str, bytes)) else np.asarray(
            cpu_context().to_host(value))
        if host is None or host.dtype != np.bool_ or host.size != 1:
            got = type(value).__name__ if host is None else f"{host.dtype} {list(host.shape)}"
            raise EnforceError(f'{self.where} step "{c.path}": should_stop_blob '
                               f"'{c.stop_blob}' must hold a scalar bool, got {got}")
        return bool(host.reshape(-1)[0])

    def _execute(self, c, external) -> None:
        reporter = _Reporter() if (c.report_net or c.reporting) else None
        if reporter:
            if c.report_net:
                reporter.start(c.step.report_interval,
                               lambda: c.report_net.run(self.deadline))
            for sub in c.reporting:
                reporter.start(sub.step.run_every_ms / 1000.0,
                               lambda sub=sub: self._execute(sub, external))
        bar = self._progress_bar(c)
        it = 0
        try:
            while external(it) and c.continue_test(it):
                if self.budget is not None:
                    self.budget.spend()
                if self.deadline is not None and time.monotonic() > self.deadline:
                    raise safety.deadline_error(f'{self.where} step "{c.path}"')
                if self._iterate(c, external, it):
                    break
                it += 1
                if bar is not None:
                    bar.update(1)
        except BaseException as e:
            if reporter:
                reporter.stop(raise_errors=False)
            if isinstance(e, Exception) and not getattr(e, "_plan_noted", False):
                e._plan_noted = True
                e.add_note(f'while running {self.where}, step "{c.path}", iteration {it}')
            raise
        finally:
            if bar is not None:
                bar.close()
                self._bar_open = False
        if reporter:
            reporter.stop()

    def _iterate(self, c, external, it) -> bool:
        """One iteration of step c; True when its stop blob says stop."""
        if c.step.substep:
            if c.sequential:
                for sub in c.recurring:
                    self._execute(sub, external)
                    if self._should_stop(c):
                        return True
                return False
            self._run_concurrently(c, lambda i: not c.failure.is_set() and external(i))
            return self._should_stop(c)
        for net in c.nets:
            net.run(self.deadline)
            if self._should_stop(c):
                return True
        return False

    def _run_concurrently(self, c, external) -> None:
        """Run c's substeps on threads (x num_concurrent_instances); re-raise the first error."""
        subs = c.recurring
        count = len(subs) * max(1, c.step.num_concurrent_instances)
        errors, done, cond = [], [0], threading.Condition()

        def worker(sub):
            try:
                if not c.failure.is_set():
                    self._execute(sub, external)
            except BaseException as e:  # noqa: B902 -- handed to the main thread
                with cond:
                    errors.append(e)
                c.failure.set()
            finally:
                with cond:
                    done[0] += 1
                    cond.notify_all()

        threads = [threading.Thread(target=worker, args=(subs[i % len(subs)],), daemon=True,
                                    name=f"plan-{c.path}-{i}") for i in range(count)]
        for t in threads:
            t.start()
        with cond:
            cond.wait_for(lambda: done[0] == count or c.failure.is_set())
            cond.wait_for(lambda: done[0] == count, timeout=CONCURRENT_EXCEPTION_TIMEOUT)
        if done[0] != count:
            err = errors[0]
            err.add_note(f"{count - done[0]} concurrent substep(s) of step \"{c.path}\" "
                         f"did not stop within {CONCURRENT_EXCEPTION_TIMEOUT} s")
            raise err
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    def _progress_bar(self, c):
        total = c.total
        if self.quiet or self._bar_open or (total is not None and total <= 1) \
                or threading.current_thread() is not threading.main_thread():
            return None
        stream = sys.stderr
        if not (hasattr(stream, "isatty") and stream.isatty()):
            return None
        from tqdm import tqdm

        self._bar_open = True
        return tqdm(total=total, desc=c.path, unit="it", file=stream, dynamic_ncols=True)


class _Reporter:
    """Runs callables every few seconds on side threads until stop(), then once more."""

    def __init__(self):
        self.done = threading.Event()
        self.threads = []
        self.errors = []

    def start(self, interval_s, fn) -> None:
        def loop():
            while True:
                finished = self.done.wait(interval_s)
                try:
                    fn()
                except BaseException as e:  # noqa: B902 -- re-raised by stop()
                    self.errors.append(e)
                    return
                if finished:
                    return

        thread = threading.Thread(target=loop, daemon=True, name="plan-reporter")
        self.threads.append(thread)
        thread.start()

    def stop(self, raise_errors: bool = True) -> None:
        self.done.set()
        for thread in self.threads:
            thread.join()
        if raise_errors and self.errors:
            raise self.errors[0]
