"""Caffe2's ``core.Plan`` and ``core.ExecutionStep``: building PlanDefs from Python.

Re-exported from ``caffe2lite.core`` (``core.Plan``, ``core.ExecutionStep``,
``core.execution_step``, ``core.scoped_execution_step``) with Caffe2's call
shapes.  A step remembers the net objects it runs so that ``Plan.AddStep``
can put their NetDefs into the plan, in the order the steps use them.  It
lives with the engine, which runs what it builds (``plan.as_plan_def`` wraps
a lone step into a plan); a net object is anything whose ``Proto()`` is a
NetDef -- ``core.Net`` above all -- so nothing here reaches up to ``core``.
"""

from __future__ import annotations

from collections import OrderedDict

from caffe2lite.proto import caffe2_pb2
from caffe2lite.runtime import safety, scope
from caffe2lite.runtime.errors import PlanError


def is_net(obj) -> bool:
    """A net object (core.Net or alike): its ``Proto()`` is a NetDef."""
    proto = getattr(obj, "Proto", None)
    return callable(proto) and isinstance(proto(), caffe2_pb2.NetDef)


def is_blob_reference(obj) -> bool:
    """A core.BlobReference (or alike): names a blob, and is not a bare string."""
    return not isinstance(obj, (str, bytes)) and callable(getattr(obj, "GetUnscopedName", None))


def get_net_name(net) -> str:
    if isinstance(net, str):
        return net
    if isinstance(net, caffe2_pb2.NetDef):
        return net.name
    return net.Name()


def _add_net_to_dict(net_dict, net) -> bool:
    """Record ``net`` under its name; False if already there (the same net)."""
    name = get_net_name(net)
    if name in net_dict:
        assert net_dict[name] is None or net is net_dict[name], \
            f"Different nets with same name: {name}"
        return False
    net_dict[name] = net if is_net(net) else None
    return True


class ExecutionStep:
    """An ExecutionStep proto under construction (Caffe2's core.ExecutionStep)."""

    _step_names_used: set[str] = set()

    @staticmethod
    def _get_next_step_name(basename: str) -> str:
        name, index = basename, 1
        while name in ExecutionStep._step_names_used:
            name = f"{basename}_{index}"
            index += 1
        ExecutionStep._step_names_used.add(name)
        return name

    def __init__(self, name, nets=None, num_iter=None):
        self._step = caffe2_pb2.ExecutionStep()
        self._step.name = name or ExecutionStep._get_next_step_name("step")
        self._net_dict = OrderedDict()
        self._is_used = False
        self._substeps = []
        if nets is not None:
            if is_net(nets):
                nets = [nets]
            for net in nets:
                if _add_net_to_dict(self._net_dict, net):
                    self._step.network.append(get_net_name(net))
        if num_iter is not None:
            self._step.num_iter = num_iter

    def get_net(self, name):
        return self._net_dict[name]

    def Name(self):  # noqa: N802
        return self._step.name

    def __str__(self):
        return self._step.name

    def _assert_can_mutate(self):
        assert not self._is_used, "Cannot mutate a step that has already been added to a plan/step."

    def _notify_is_used(self):
        self._is_used = True

    def Proto(self):  # noqa: N802
        return self._step

    def HasNets(self):  # noqa: N802
        return len(self._step.network) > 0

    def HasSubsteps(self):  # noqa: N802
        return len(self._step.substep) > 0

    def Nets(self):  # noqa: N802
        return list(self._net_dict.values())

    def Substeps(self):  # noqa: N802
        return self._substeps

    def SetIter(self, num_iter):  # noqa: N802
        self._assert_can_mutate()
        self._step.num_iter = num_iter

    def SetCreateWorkspace(self, create_workspace):  # noqa: N802
        self._assert_can_mutate()
        self._step.create_workspace = create_workspace

    def SetNumConcurrentInstances(self, num_concurrent_instances):  # noqa: N802
        self._assert_can_mutate()
        self._step.num_concurrent_instances = num_concurrent_instances

    def SetOnlyOnce(self, only_once):  # noqa: N802
        self._assert_can_mutate()
        self._step.only_once = only_once

    def SetShouldStopBlob(self, should_stop_blob):  # noqa: N802
        assert is_blob_reference(should_stop_blob), \
            f"expects BlobReference here, got {type(should_stop_blob)}"
        self._assert_can_mutate()
        self._step.should_stop_blob = str(should_stop_blob)

    def RunEveryMillis(self, interval):  # noqa: N802
        """Run this substep every ``interval`` ms while its siblings run (and once after)."""
        self._step.run_every_ms = interval

    def SetReportNet(self, report_net, report_interval):  # noqa: N802
        """Deprecated in Caffe2 (use RunEveryMillis); report_interval is in seconds."""
        self._assert_can_mutate()
        _add_net_to_dict(self._net_dict, report_net)
        self._step.report_net = get_net_name(report_net)
        self._step.report_interval = report_interval

    def AddSubstep(self, substep):  # noqa: N802
        self._assert_can_mutate()
        assert not self.HasNets(), "Cannot have both network and substeps."
        if isinstance(substep, ExecutionStep):
            substep._notify_is_used()
            if not substep.HasNets() and not substep.HasSubsteps():
                return self
            for net in substep.Nets():
                _add_net_to_dict(self._net_dict, net)
            self._substeps.append(substep)
            proto = substep.Proto()
        else:
            proto = substep
        self._step.substep.add().CopyFrom(proto)
        return self

    def SetConcurrentSubsteps(self, concurrent_substeps):  # noqa: N802
        self._assert_can_mutate()
        assert not self.HasNets(), "Cannot have both network and substeps."
        self._step.concurrent_substeps = concurrent_substeps

    def AddNet(self, net):  # noqa: N802
        self._assert_can_mutate()
        assert not self.HasSubsteps(), "Cannot have both network and substeps."
        assert is_net(net)
        _add_net_to_dict(self._net_dict, net)
        self._step.network.append(get_net_name(net))
        return self


def add_nets_in_order(step, net_list) -> None:
    """Append the names of the nets ``step`` uses, substeps first, report net last.

    A walk with its own stack, not recursion: steps nested deeper than
    safety.MAX_NESTING raise PlanError here instead of a RecursionError.
    """

    stack = [(step, 1, False)]
    while stack:
        current, depth, expanded = stack.pop()
        if depth > safety.MAX_NESTING:
            raise PlanError(f"execution step '{current.Name()}': steps nested deeper than "
                            f"{safety.MAX_NESTING} levels are refused")
        if not expanded:
            stack.append((current, depth, True))
            stack += [(sub, depth + 1, False) for sub in reversed(current.Substeps())]
            continue
        proto = current.Proto()
        for net in proto.network:
            if net not in net_list:
                net_list.append(net)
        if proto.report_net and proto.report_net not in net_list:
            net_list.append(proto.report_net)


class Plan:
    """A PlanDef under construction (Caffe2's core.Plan)."""

    def __init__(self, name_or_step):
        self._plan = caffe2_pb2.PlanDef()
        self._net_dict = OrderedDict()
        self._steps = []
        if isinstance(name_or_step, ExecutionStep):
            self._plan.name = name_or_step.Name()
            self.AddStep(name_or_step)
        elif isinstance(name_or_step, str):
            self._plan.name = name_or_step
        else:
            raise ValueError("name_or_step must be a string or ExecutionStep")

    def __str__(self):
        return self._plan.name

    def Proto(self):  # noqa: N802
        return self._plan

    def AddNets(self, nets):  # noqa: N802
        for net in nets:
            if _add_net_to_dict(self._net_dict, net):
                assert is_net(net), \
                    f"net {get_net_name(net)!r} must be a core.Net to be added to a plan"
                self._plan.network.add().CopyFrom(net.Proto())

    def Nets(self):  # noqa: N802
        return list(self._net_dict.values())

    def AddStep(self, step):  # noqa: N802
        assert isinstance(step, ExecutionStep)
        step._notify_is_used()
        if not step.HasNets() and not step.HasSubsteps():
            return
        self._plan.execution_step.add().CopyFrom(step.Proto())
        self._steps.append(step)
        net_list = []
        add_nets_in_order(step, net_list)
        self.AddNets([step.get_net(n) for n in net_list])

    def Steps(self):  # noqa: N802
        return self._steps


def to_execution_step(step_or_nets, default_name=None):
    if isinstance(step_or_nets, ExecutionStep):
        return step_or_nets
    if not default_name and hasattr(step_or_nets, "name"):
        default_name = step_or_nets.name
    return execution_step(default_name, step_or_nets)


def execution_step(default_name, steps_or_nets, num_iter=None, report_net=None,
                   report_interval=None, concurrent_substeps=None, should_stop_blob=None,
                   only_once=None, num_concurrent_instances=None, create_workspace=False,
                   run_every_ms=None):
    """An ExecutionStep from a net, a step, or a list of nets or steps (Caffe2's helper).

    should_stop_blob (a scalar bool blob) is checked after every substep or
    net; with neither it nor num_iter the step runs once.
    """
    assert should_stop_blob is None or num_iter is None, \
        "Cannot set both should_stop_blob and num_iter."
    if should_stop_blob is None and num_iter is None:
        num_iter = 1
    step = ExecutionStep(default_name)
    if should_stop_blob is not None:
        step.SetShouldStopBlob(should_stop_blob)
    if num_iter is not None:
        step.SetIter(num_iter)
    if only_once is not None:
        step.SetOnlyOnce(only_once)
    if concurrent_substeps is not None:
        step.SetConcurrentSubsteps(concurrent_substeps)
    if report_net is not None:
        assert report_interval is not None
        step.SetReportNet(report_net, report_interval)
    if num_concurrent_instances is not None:
        step.SetNumConcurrentInstances(num_concurrent_instances)
    if create_workspace:
        step.SetCreateWorkspace(True)
    if run_every_ms:
        step.RunEveryMillis(run_every_ms)
    if isinstance(steps_or_nets, ExecutionStep):
        step.AddSubstep(steps_or_nets)
    elif is_net(steps_or_nets):
        step.AddNet(steps_or_nets)
    elif isinstance(steps_or_nets, list):
        if all(is_net(x) for x in steps_or_nets):
            for x in steps_or_nets:
                step.AddNet(x)
        else:
            for x in steps_or_nets:
                step.AddSubstep(to_execution_step(x))
    elif steps_or_nets:
        raise ValueError("steps_or_nets must be a step, a net, or a list of nets or steps.")
    return step


def scoped_execution_step(name, *args, **kwargs):
    """execution_step with the step name under the current name scope."""
    default_name = scope.CurrentNameScope() + name if name else name
    return execution_step(default_name, *args, **kwargs)
