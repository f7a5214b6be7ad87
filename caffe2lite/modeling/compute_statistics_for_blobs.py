"""Caffe2's ComputeStatisticsForBlobs: min, max, mean and standard deviation of blobs.

For each blob: ``Cast`` to float, ``Summarize`` into ``<blob>_summary`` (a
4-vector) and ``Print`` it every ``logging_frequency`` runs.
"""

import numpy as np

from caffe2lite import core
from caffe2lite.modeling.net_modifier import (NetModifier, add_output_record_field,
                                              check_blob_defined)


class ComputeStatisticsForBlobs(NetModifier):

    def __init__(self, blobs, logging_frequency):
        self._blobs = blobs
        self._logging_frequency = logging_frequency
        self._field_name_suffix = "_summary"

    def modify_net(self, net, init_net=None, grad_map=None, blob_to_device=None,
                   modify_output_record=False):
        for blob_name in self._blobs:
            blob = core.BlobReference(blob_name)
            check_blob_defined(net, blob)
            cast_blob = net.Cast(blob, to=core.DataType.FLOAT)
            stats_name = net.NextScopedBlob(prefix=blob + self._field_name_suffix)
            stats = net.Summarize(cast_blob, stats_name, to_file=0)
            net.Print(stats, [], every_n=self._logging_frequency)
            if modify_output_record:
                add_output_record_field(net, str(blob) + self._field_name_suffix,
                                        (np.float64, (1,)), stats)

    def field_name_suffix(self):
        return self._field_name_suffix
