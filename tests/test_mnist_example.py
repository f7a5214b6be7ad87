"""A short run of examples/mnist.py: Caffe2's LeNet tutorial ported by its imports trains,
plots, draws, exports with predictor_exporter and reloads with identical predictions (needs the ``examples`` extra)."""

import importlib.util
from pathlib import Path

import pytest

MNIST = Path(__file__).resolve().parents[1] / "examples" / "mnist.py"


def test_short_mnist_run_trains_exports_and_reloads(tmp_path, capsys):
    for module in ("sklearn", "matplotlib"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is missing: pip install 'caffe2lite[examples]'")
    spec = importlib.util.spec_from_file_location("caffe2lite_mnist", MNIST)
    mnist = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mnist)
    accuracy = mnist.main(["--iters", "40", "--out", str(tmp_path), "--quiet"])
    assert accuracy > 0.5  # 10 classes: chance is 0.1; 40 steps of SGD get well past it
    assert (tmp_path / "mnist_training.png").stat().st_size > 0
    assert (tmp_path / "mnist_model.minidb").stat().st_size > 0
    for name in ("mnist_net", "mnist_net_minimal"):  # PNG with Graphviz, DOT text without
        assert any((tmp_path / f"{name}{ext}").exists() for ext in (".png", ".dot")), name
    out = capsys.readouterr().out
    assert "exported with predictor_exporter" in out
    assert "the 300 predictions are identical" in out
