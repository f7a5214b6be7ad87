"""Caffe2's ``helpers/control_ops``: ``cond`` and ``loop`` over sub-models (If / While).

``brew.cond(model, cond_blob, external_blobs, then_model, else_model=None)`` and
``brew.loop(model, cond_blob, external_blobs, loop_model, cond_model=None)`` add to
``model.net`` an If or a While whose branches / body are the other models' nets, run in
scopes of their own (caffe2lite.control_ops_util): ``external_blobs`` names the outer
blobs they may read and write; every other blob they make stays inside them.
"""

from caffe2lite.control_ops_util import add_if_op, add_while_op


def cond(model, cond_blob, external_blobs, then_model, else_model=None):
    """Condition"""
    add_if_op(model.net, cond_blob, external_blobs, then_model.net,
              else_model.net if else_model else None)


def loop(model, cond_blob, external_blobs, loop_model, cond_model=None):
    """Loop"""
    add_while_op(model.net, cond_blob, external_blobs, loop_model.net,
                 cond_model.net if cond_model else None)
