"""Int8Quantize's quantization-parameter input and the ops and helpers that make it.

The parameter blob (Caffe2's Int8QuantParamsBlob) comes from
Int8GenQuantParamsMinMax -- fbgemm's ChooseQuantizationParams, re-derived here
from its documented steps -- or from dnnlowp_pybind11.CreateInt8QuantParamsBlob,
and overrides Int8Quantize's Y_scale / Y_zero_point.
"""

from __future__ import annotations

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import EnforceError
from caffe2lite.quantization.server import dnnlowp_pybind11
from helpers import assert_unchanged, snapshot

F = np.float32


def choose_ref(lo, hi, symmetric=False):
    """fbgemm ChooseQuantizationParams for uint8, step by step."""
    lo, hi = float(lo), float(hi)
    if symmetric and lo < 0 < hi:
        step = max(abs(lo / -128), abs(hi / 127))
        lo, hi = float(F(step * -128)), float(F(step * 127))
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = float(F((hi - lo) / 255))
    if scale == 0:
        scale = float(F(0.1))
    candidates = [(0 + abs(lo / scale), 0 - lo / scale), (255 + abs(hi / scale), 255 - hi / scale)]
    zero_point = min(candidates)[1] if candidates[0][0] != candidates[1][0] else candidates[1][1]
    if symmetric and lo < 0 < hi:
        zero_point = 128
    return scale, int(min(max(np.rint(zero_point), 0), 255))


def gen_params(lo, hi, scheme=None):
    workspace.FeedBlob("lo", np.array([lo], F))
    workspace.FeedBlob("hi", np.array([hi], F))
    inputs = ["lo", "hi"] + ([scheme] if scheme else [])
    workspace.RunOperatorOnce(core.CreateOperator("Int8GenQuantParamsMinMax", inputs, ["qp"]))
    return dnnlowp_pybind11.ObserveInt8QuantParamsBlob("qp")


@pytest.mark.parametrize("lo,hi", [(0.0, 2.55), (-2.55, 0.0), (-1.0, 1.0), (-0.3, 7.1),
                                   (0.5, 3.0), (-4.0, -1.0), (0.0, 0.0), (-1e-3, 250.0)])
def test_gen_quant_params_min_max_is_fbgemms_choice(lo, hi):
    scale, zero_point = gen_params(lo, hi)
    expected = choose_ref(lo, hi)
    assert zero_point == expected[1]
    assert np.float32(scale) == np.float32(expected[0])


def test_known_parameters_and_the_sparsity_preserving_scheme():
    assert gen_params(0.0, 2.55) == (float(F(0.01)), 0)
    assert gen_params(-2.55, 0.0) == (float(F(0.01)), 255)
    assert gen_params(0.0, 0.0) == (float(F(0.1)), 0)  # an empty range: scale 0.1
    workspace.RunOperatorOnce(core.CreateOperator("Int8QuantSchemeBlobFill", [], ["scheme"],
                                                  preserve_sparsity=1))
    assert dnnlowp_pybind11.ObserveInt8QuantSchemeBlob("scheme") == ("MIN_MAX_QUANTIZATION",
                                                                     True)
    scale, zero_point = gen_params(-1.0, 1.0, "scheme")
    assert zero_point == 128 and np.float32(scale) == np.float32(choose_ref(-1, 1, True)[0])
    dnnlowp_pybind11.CreateInt8QuantSchemeBlob("plain", "MIN_MAX_QUANTIZATION", False)
    assert gen_params(-1.0, 1.0, "plain") == gen_params(-1.0, 1.0)


def test_int8_quantize_takes_the_parameter_blob_over_its_arguments():
    x = np.array([-1.0, -0.2, 0.0, 0.3, 0.9, 5.0], F)
    workspace.FeedBlob("x", x)
    dnnlowp_pybind11.CreateInt8QuantParamsBlob("qp", 0.01, 100)
    workspace.RunOperatorOnce(core.CreateOperator("Int8Quantize", ["x", "qp"], ["q"],
                                                  Y_scale=1.0, Y_zero_point=3))
    q = workspace.FetchInt8Blob("q")
    expected = np.clip(np.rint(x / F(0.01)) + 100, 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(q.data, expected)
    assert (np.float32(q.scale), q.zero_point) == (np.float32(0.01), 100)


@pytest.mark.parametrize("qparam, message", [
    (np.array([0.1], F), "Int8QuantParamsBlob"),
    ("bad_zero_point", r"zero point in \[0, 255\]"),
])
def test_int8_quantize_refuses_a_wrong_parameter_blob(qparam, message):
    workspace.FeedBlob("x", np.ones(3, F))
    if isinstance(qparam, str):
        dnnlowp_pybind11.CreateInt8QuantParamsBlob("qp", 0.5, 300)
    else:
        workspace.FeedBlob("qp", qparam)
    before = snapshot()
    with pytest.raises(EnforceError, match=message):
        workspace.RunOperatorOnce(core.CreateOperator("Int8Quantize", ["x", "qp"], ["q"]))
    assert_unchanged(before)


def test_gen_quant_params_refuses_bad_bounds():
    with pytest.raises(EnforceError, match="must not be greater"):
        gen_params(2.0, 1.0)
    with pytest.raises(EnforceError, match="finite"):
        gen_params(float("nan"), 1.0)
    assert not workspace.HasBlob("qp")


def test_parameter_blobs_are_not_serialized(tmp_path):
    dnnlowp_pybind11.CreateInt8QuantParamsBlob("qp", 0.5, 3)
    dnnlowp_pybind11.CreateInt8QuantSchemeBlob("scheme", "MIN_MAX_QUANTIZATION", True)
    for name, kind in (("qp", "Int8QuantParamsBlob"), ("scheme", "Int8QuantSchemeBlob")):
        with pytest.raises(EnforceError, match=f"holds an {kind}, which cannot be serialized"):
            workspace.SerializeBlob(name)
        with pytest.raises(EnforceError, match="cannot be serialized"):
            workspace.RunOperatorOnce(core.CreateOperator(
                "Save", [name], [], db=str(tmp_path / "params.minidb"), db_type="minidb",
                absolute_path=1))
    assert not (tmp_path / "params.minidb").exists()
