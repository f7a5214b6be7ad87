"""Build hook for the optional compiled kernels (metadata lives in pyproject.toml).

The C files are plain C (no Python headers) loaded with ctypes by
caffe2lite/_native; ``optional=True`` turns a failed build (no compiler) into
a warning, and caffe2lite then uses its NumPy kernels.
"""

from setuptools import Extension, setup

setup(ext_modules=[
    Extension("caffe2lite._native._sparse_normalize",
              sources=["caffe2lite/_native/sparse_normalize.c"],
              depends=["caffe2lite/_native/rows.h"],
              extra_compile_args=["-O3", "-std=c11"],
              optional=True),
    Extension("caffe2lite._native._sparse_lengths",
              sources=["caffe2lite/_native/sparse_lengths.c"],
              depends=["caffe2lite/_native/rows.h"],
              # no fused multiply-add: the same roundings as the NumPy path
              extra_compile_args=["-O3", "-std=c11", "-ffp-contract=off"],
              optional=True),
    Extension("caffe2lite._native._adagrad",
              sources=["caffe2lite/_native/adagrad.c"],
              depends=["caffe2lite/_native/rows.h"],
              # no fused multiply-add: NumPy's roundings; sqrtf without errno vectorises
              extra_compile_args=["-O3", "-std=c11", "-ffp-contract=off", "-fno-math-errno"],
              optional=True),
    Extension("caffe2lite._native._rowwise_8bit",
              sources=["caffe2lite/_native/rowwise_8bit.c"],
              depends=["caffe2lite/_native/rows.h"],
              # no fused multiply-add: Caffe2's portable roundings, the NumPy engine's
              extra_compile_args=["-O3", "-std=c11", "-ffp-contract=off"],
              optional=True),
    Extension("caffe2lite._native._dense",
              sources=["caffe2lite/_native/dense.c"],
              depends=["caffe2lite/_native/rows.h"],
              extra_compile_args=["-O3", "-std=c11", "-ffp-contract=off"],
              optional=True),
    Extension("caffe2lite._native._conv",
              sources=["caffe2lite/_native/conv.c"],
              extra_compile_args=["-O3", "-std=c11"],
              optional=True),
    Extension("caffe2lite._native._detection",
              sources=["caffe2lite/_native/detection.c"],
              # no fused multiply-add: the float32 roundings of Caffe2's formulas
              extra_compile_args=["-O3", "-std=c11", "-ffp-contract=off"],
              optional=True),
])
