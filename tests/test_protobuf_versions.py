"""caffe2lite on every protobuf major it claims (pyproject: protobuf>=4.25,<8).

The suite itself runs on the newest protobuf (grpcio-tools pulls it in), but a
Caffe2 user's environment is often held back by another library, and the GPU
image carries its own protobuf.  Each case installs one older runtime into a
scratch folder and reruns the protobuf-facing tests with it first on the path:
text and binary nets, the real Caffe2 nets, plans and minidb checkpoints.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PROTOBUF_FACING_TESTS = [
    "tests/test_proto.py",
    "tests/test_real_nets.py",
    "tests/test_plan.py",
    "tests/operators/test_save_load.py",
    "tests/test_predictor_exporter.py",
]


def _install(version: str, target: Path) -> None:
    """pip-install protobuf==version (wheel only) into target, or skip when offline."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "--no-deps", "--only-binary=:all:", "--target", str(target), f"protobuf=={version}"],
        capture_output=True, text=True, timeout=180, check=False)
    if done.returncode != 0:
        pytest.skip(f"could not install protobuf=={version} (no package index?): "
                    f"{done.stderr.strip().splitlines()[-1:]}")


@pytest.mark.slow
@pytest.mark.parametrize("version", ["4.25.*", "5.29.*", "6.33.*"])
def test_protobuf_facing_tests_pass_on_older_runtime(version, tmp_path):
    site = tmp_path / "site"
    _install(version, site)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]))
    probe = subprocess.run(
        [sys.executable, "-c", "import google.protobuf as p; print(p.__version__)"],
        env=env, capture_output=True, text=True, check=True)
    assert probe.stdout.startswith(version.rstrip("*")), probe.stdout  # really the old one

    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-m", "not slow",  # the big-net text round trip: 18 s, nothing version-specific
         # the drift check needs protoc (grpcio-tools), which needs the newest runtime
         "--deselect", "tests/test_proto.py::test_generated_module_has_no_drift",
         *PROTOBUF_FACING_TESTS],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"protobuf {probe.stdout.strip()}:\n{done.stdout[-4000:]}"
