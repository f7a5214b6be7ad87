"""``python -m caffe2lite``: the same command line as the ``caffe2lite`` script."""

import sys

from caffe2lite.cli import main

sys.exit(main())
