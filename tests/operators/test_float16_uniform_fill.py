"""Float16UniformFill: float16 samples of U[min, max] that stay within the bounds."""

import numpy as np

from caffe2lite import core, workspace


def test_float16_uniform_fill_stays_in_range_with_uniform_moments():
    workspace.RunOperatorOnce(core.CreateOperator("Float16UniformFill", [], ["h"],
                                                  shape=[200, 50], min=-1.0, max=2.0001))
    h = workspace.FetchBlob("h")
    assert h.dtype == np.float16 and h.shape == (200, 50)
    # 2.0001 rounds up to float16 2.002: the samples must still stay below 2.0001
    assert h.min() >= -1.0 and float(h.max()) <= 2.0001
    values = h.astype(np.float32)
    assert abs(float(values.mean()) - 0.50005) < 0.03
    assert abs(float(values.var()) - 3.0001 ** 2 / 12) < 0.05
