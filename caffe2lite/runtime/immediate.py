"""Caffe2's immediate mode: every operator made with core.CreateOperator also runs at once.

A debugging aid from Caffe2's workspace module.  ``StartImmediate()`` opens
a separate workspace, "_CAFFE2_IMMEDIATE", in a temporary folder; from then
on each ``core.CreateOperator`` call runs the new op there, so results can be
inspected with ``FetchImmediate`` while a net is being written.  The current
workspace is never touched; ``StopImmediate()`` drops the immediate one and
its folder.  The functions keep Caffe2's names and are re-exported by
``caffe2lite.workspace``.
"""

from __future__ import annotations

import logging
import shutil
import tempfile

from caffe2lite.runtime import workspaces
from caffe2lite.runtime.errors import WorkspaceError

WORKSPACE_NAME = "_CAFFE2_IMMEDIATE"
logger = logging.getLogger("caffe2lite")

_folder: list[str] = []  # the immediate workspace's root folder while immediate mode is on


def IsImmediate() -> bool:  # noqa: N802
    return bool(_folder)


def StartImmediate(i_know=False):  # noqa: N802
    """Turn immediate mode on (restarting it, empty, if it was on)."""
    StopImmediate()
    _folder.append(tempfile.mkdtemp(prefix="caffe2lite-immediate-"))
    workspaces.add(workspaces.Workspace(WORKSPACE_NAME, _folder[0]))
    if not i_know:
        logger.warning("immediate mode is on: every operator made with core.CreateOperator "
                       "now also runs in workspace %r. It is for debugging and slows net "
                       "building; StopImmediate() ends it.", WORKSPACE_NAME)


def StopImmediate():  # noqa: N802
    """Turn immediate mode off, dropping its workspace and folder."""
    if not _folder:
        return
    if workspaces.current().name == WORKSPACE_NAME:
        workspaces.switch("default", True)
    workspaces.drop(WORKSPACE_NAME)
    shutil.rmtree(_folder.pop(), ignore_errors=True)


def _immediate_workspace():
    if not _folder:
        raise WorkspaceError("immediate mode is off: call workspace.StartImmediate() first")
    return workspaces.get(WORKSPACE_NAME)


def ImmediateBlobs():  # noqa: N802
    return sorted(_immediate_workspace().blob_dict)


def RunOperatorImmediate(op):  # noqa: N802
    return _immediate_workspace().run_operator_once(op)


def FetchImmediate(*args, **kwargs):  # noqa: N802
    return _immediate_workspace().fetch_blob(*args, **kwargs)


def FeedImmediate(*args, **kwargs):  # noqa: N802
    return _immediate_workspace().feed_blob(*args, **kwargs)
