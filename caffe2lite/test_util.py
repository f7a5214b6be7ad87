"""Caffe2's ``caffe2.python.test_util``: the TestCase its Python tests derive from.

A Caffe2 test ports by changing ``from caffe2.python import test_util`` to
``from caffe2lite import test_util``: each test starts and ends in an empty
workspace, as Caffe2's did.
"""

from __future__ import annotations

import shutil
import tempfile
import unittest
from pathlib import Path

import numpy as np

from caffe2lite import workspace


def rand_array(*dims):
    """A float32 array of ``dims`` uniform in [-0.5, 0.5) (Caffe2's helper); with no dims,
    a 0-d array (Caffe2's scalar weights)."""
    return np.array(np.random.rand(*dims) - 0.5).astype(np.float32)


def randBlobFloat32(*dims):  # noqa: N802 - Caffe2's name
    return np.random.rand(*dims).astype(np.float32)


class TestCase(unittest.TestCase):
    """unittest.TestCase with Caffe2's set-up: an empty workspace around every test."""

    @classmethod
    def setUpClass(cls):
        workspace.GlobalInit(["caffe2", "--caffe2_log_level=0"])

    def setUp(self):
        self.ws = workspace.C.Workspace()
        workspace.ResetWorkspace()
        self._tempdirs = []

    def tearDown(self):
        for path in self._tempdirs:
            shutil.rmtree(path, ignore_errors=True)
        workspace.ResetWorkspace()

    def make_tempdir(self):
        """A temporary folder (a pathlib.Path, as Caffe2's), removed after the test."""
        path = Path(tempfile.mkdtemp(prefix=type(self).__name__))
        self._tempdirs.append(path)
        return path

    def assertApproxEqual(self, a, b, rtol=1e-5, atol=0):  # noqa: N802
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
