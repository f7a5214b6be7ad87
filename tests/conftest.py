"""Shared test fixtures: a fresh default workspace per test, the shared nets folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from caffe2lite import workspace

# Real Caffe2 nets and golden op tests live outside the project, never inside it:
# CAFFE2LITE_NETS=DIR names the folder; the project's workplace keeps one beside the checkout.
NETS_DIR = Path(os.environ.get("CAFFE2LITE_NETS")
                or Path(__file__).resolve().parents[1].parent / "shared" / "nets")
NETS_MISSING = (f"real-net corpus not found at {NETS_DIR}: `python tools/fetch_nets.py DIR` "
                f"downloads it (tools/nets_manifest.tsv lists each file's repository, commit "
                f"and sha256), then run the tests with CAFFE2LITE_NETS=DIR")


def pytest_addoption(parser):
    parser.addoption(
        "--fake-cuda", action="store_true",
        help="pose tests/fake_cupy.py (NumPy, CUDA kernels emulated on the host) as CuPy "
             "with two GPUs, so the cuda-marked tests run here: a rehearsal of "
             "tools/gpu_check.sh on a machine without a GPU, never a GPU result")


def pytest_configure(config):
    # Before collection: tests/device_utils.py decides at import whether CUDA is usable.
    if config.getoption("--fake-cuda"):
        import sys

        from fake_cupy import make_fake_cupy

        sys.modules["cupy"] = make_fake_cupy(device_count=2)


@pytest.fixture(autouse=True)
def fresh_workspace():
    """Every test starts in an empty 'default' workspace."""
    workspace.SwitchWorkspace("default", True)
    workspace.ResetWorkspace()
    yield
    workspace.SwitchWorkspace("default", True)
    workspace.ResetWorkspace()


@pytest.fixture
def strict_args():
    """Undeclared operator arguments are errors for the test (the strict switch)."""
    from caffe2lite.runtime import flags

    saved = flags.get("caffe2lite_strict_args")
    workspace.GlobalInit(["caffe2", "--caffe2lite_strict_args=1"])
    yield
    workspace.GlobalInit(["caffe2", f"--caffe2lite_strict_args={saved}"])


@pytest.fixture
def nets_dir() -> Path:
    """The real-net corpus folder, or skip saying how to get it."""
    if not NETS_DIR.is_dir():
        pytest.skip(NETS_MISSING)
    return NETS_DIR


# Hypothesis: no per-example deadline (the CI machine has 2 shared cores), and the same
# examples on every run, so a landing never fails on a draw no one saw before;
# CAFFE2LITE_HYPOTHESIS_EXPLORE=1 draws fresh ones (and more of them) to hunt for bugs.
from hypothesis import settings  # noqa: E402

settings.register_profile("caffe2lite", deadline=None, max_examples=40, derandomize=True)
settings.register_profile("explore", deadline=None, max_examples=400)
settings.load_profile("explore" if os.environ.get("CAFFE2LITE_HYPOTHESIS_EXPLORE") == "1"
                      else "caffe2lite")
