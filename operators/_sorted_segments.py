"""Searching many sorted segments at once (BatchBucketize, BisectPercentile).

A flat array holds one sorted run of boundaries per segment; each query value belongs
to one segment.  ``segmented_searchsorted`` gives, for every query, its insertion
point inside its own segment with one ``searchsorted`` over the whole array: values
become order-preserving integer keys with the segment number in the high bits, so
segments sort one after another and values within each keep their order.
(breadth-seq's ``_segments.segmented_search`` answers the same question; one of the
two should go when the branches meet.)
"""

from __future__ import annotations

import numpy as np


def _ordered_bits(values):
    """uint64 keys in the order of the float values (float32 exactly, float64 to within
    the float32 rounding, which only reorders values that differ past it)."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    negative = (bits >> np.uint64(31)) == 1
    return np.where(negative, ~bits & np.uint64(0xFFFFFFFF), bits | np.uint64(0x80000000))


def segmented_searchsorted(boundaries, lengths, queries, segment_of_query, side="left"):
    """Insertion point of ``queries[i]`` in its segment ``segment_of_query[i]`` of
    ``boundaries`` (segments of ``lengths``, each sorted), as np.searchsorted gives it."""
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    segment = np.repeat(np.arange(len(lengths), dtype=np.uint64), lengths)
    keys = (segment << np.uint64(32)) | _ordered_bits(boundaries)
    query_keys = (np.asarray(segment_of_query, dtype=np.uint64) << np.uint64(32)) | \
        _ordered_bits(queries)
    return np.searchsorted(keys, query_keys, side=side) - starts[segment_of_query]
