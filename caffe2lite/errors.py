"""caffe2lite's exceptions, for callers to catch: ``from caffe2lite.errors import ...``.

Every error caffe2lite raises is a ``Caffe2LiteError``; the classes are defined
with the engine, in ``caffe2lite.runtime.errors``.
"""

from caffe2lite.runtime.errors import *  # noqa: F401,F403
from caffe2lite.runtime.errors import __all__  # noqa: F401
