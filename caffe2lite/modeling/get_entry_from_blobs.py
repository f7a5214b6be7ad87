"""Caffe2's GetEntryFromBlobs: one entry (or row) of 2-D blobs, printed as training runs.

For each blob: ``Slice`` row ``i1``, then column ``i2`` of it into
``<blob>_<i1>_<i2>`` (``i2 == -1``: the whole row, ``Copy``-ed into
``<blob>_<i1>_all``), and ``Print`` every ``logging_frequency`` runs.
"""

import numpy as np

from caffe2lite import core
from caffe2lite.modeling.net_modifier import (NetModifier, add_output_record_field,
                                              check_blob_defined)


class GetEntryFromBlobs(NetModifier):

    def __init__(self, blobs, logging_frequency, i1=0, i2=0):
        self._blobs = blobs
        self._logging_frequency = logging_frequency
        self._i1 = i1
        self._i2 = i2
        self._field_name_suffix = f"_{i1}_{i2}" if i2 >= 0 else f"_{i1}_all"

    def modify_net(self, net, init_net=None, grad_map=None, blob_to_device=None,
                   modify_output_record=False):
        i1, i2 = self._i1, self._i2
        if i1 < 0:
            raise ValueError("index is out of range")
        for blob_name in self._blobs:
            blob = core.BlobReference(blob_name)
            check_blob_defined(net, blob)
            blob_i1 = net.Slice([blob], starts=[i1, 0], ends=[i1 + 1, -1])
            if i2 == -1:
                blob_i1_i2 = net.Copy([blob_i1],
                                      [net.NextScopedBlob(prefix=blob + f"_{i1}_all")])
            else:
                blob_i1_i2 = net.Slice([blob_i1],
                                       net.NextScopedBlob(prefix=blob + f"_{i1}_{i2}"),
                                       starts=[0, i2], ends=[-1, i2 + 1])
            if self._logging_frequency >= 1:
                net.Print(blob_i1_i2, [], every_n=self._logging_frequency)
            if modify_output_record:
                add_output_record_field(net, str(blob) + self._field_name_suffix,
                                        np.float64, blob_i1_i2)

    def field_name_suffix(self):
        return self._field_name_suffix
