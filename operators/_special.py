"""Special functions NumPy lacks (erf), from SciPy on the CPU and cupyx on CUDA.

Caffe2 called std::erf; SciPy's erf is exact to the last bit or two, as is
CuPy's, where a hand-written series would not be.  Imported on first use, so
loading the operators does not load SciPy.
"""

import numpy as np


def erf(xp, x):
    """The error function of x, elementwise, in x's dtype."""
    if xp is np:
        from scipy import special
    else:
        from cupyx.scipy import special
    return special.erf(x).astype(x.dtype, copy=False)
