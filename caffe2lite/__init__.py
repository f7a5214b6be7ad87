"""caffe2lite: a Python port of the Caffe2 operator-graph framework.

Use it as you used Caffe2: ``from caffe2lite import core, workspace``.
"""

__version__ = "0.1.0"
