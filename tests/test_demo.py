"""A short run of the main job (examples/demo.py): the loss drops and the norm bound holds."""

import importlib.util
from pathlib import Path

import numpy as np

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo.py"


def load_demo():
    spec = importlib.util.spec_from_file_location("caffe2lite_demo", DEMO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_short_demo_learns_bounds_rows_and_reloads_exactly(tmp_path):
    demo = load_demo()
    r = demo.run(iters=300, quiet=True, checkpoint=str(tmp_path / "model.minidb"))
    assert r["end"] < r["start"] - 0.02
    assert r["end"] < r["constant"]
    assert r["reloaded"] == r["end"]
    assert (tmp_path / "model.minidb").stat().st_size > 0
    # The bound, checked independently of the demo's own helper: every row of
    # every table, straight from the checkpointed workspace.
    from caffe2lite import workspace
    for table in demo.TABLES:
        norms = np.linalg.norm(workspace.FetchBlob(table).astype(np.float64), axis=1)
        assert norms.max() <= demo.MAX_NORM * (1 + 1e-6)
