"""Caffe2's ``predictor.predictor_py_utils``: the nets an export holds, and MetaNetDef maps.

A MetaNetDef keeps its nets, plans and blob lists as repeated (key, value)
messages (proto2 has no map); ``GetNet`` / ``AddNet`` / ``GetBlobs`` /
``AddBlobs`` / ... read and write them by key.  ``create_predict_net`` and
``create_predict_init_net`` build the predict net and the net that zero-fills
its inputs and outputs (shapes from ``PredictorExportMeta.shapes`` or from
the blobs in the workspace), as Caffe2's exporter stored them.
"""

from __future__ import annotations

from caffe2lite import core


def create_predict_net(predictor_export_meta):
    """The predict net: the given net's ops, partition info and arguments, with
    external inputs = inputs + parameters and external outputs = outputs."""
    meta = predictor_export_meta
    net = core.Net(meta.predict_net.name or "predict")
    proto = net.Proto()
    proto.op.extend(meta.predict_net.op)
    proto.partition_info.extend(meta.predict_net.partition_info)
    proto.external_input.extend(meta.inputs + meta.parameters)
    proto.external_output.extend(meta.outputs)
    proto.arg.extend(meta.predict_net.arg)
    if meta.net_type is not None:
        proto.type = meta.net_type
    if meta.num_workers is not None:
        proto.num_workers = meta.num_workers
    return proto


def create_predict_init_net(ws, predictor_export_meta):
    """A net that zero-fills every input and output (float ConstantFill of the shape
    in ``shapes``, else of the blob in workspace ``ws``), then runs ``extra_init_net``.

    The fills carry no device option, whatever the current DeviceScope, so a
    loader decides where they run for the whole net (Caffe2 built them in an
    empty device scope for the same reason)."""
    meta = predictor_export_meta
    net = core.Net("predict-init")
    external_blobs = meta.inputs + meta.outputs
    for blob in external_blobs:
        shape = meta.shapes.get(blob)
        if shape is None:
            if blob not in ws.blobs:
                raise Exception(f"{blob} not in workspace but needed for shape: "
                                f"{list(ws.blobs)}")
            shape = ws.blobs[blob].fetch().shape
        fill = core.CreateOperator("ConstantFill", [], [blob], shape=list(shape), value=0.0)
        fill.ClearField("device_option")
        net.Proto().op.append(fill)
    net.Proto().external_input.extend(external_blobs)
    if meta.extra_init_net:
        extra = meta.extra_init_net
        net.AppendNet(extra if isinstance(extra, core.Net) else core.Net(extra))
    AddModelIdArg(meta, net.Proto())
    return net.Proto()


def get_comp_name(string, name):
    """``string`` suffixed with ``_name`` when a name is given (one export per name)."""
    return f"{string}_{name}" if name else string


def _ProtoMapGet(field, key):  # noqa: N802 (Caffe2's name)
    """The value stored under ``key`` in a repeated (key, value) field, or None."""
    for entry in field:
        if entry.key == key:
            return entry.value
    return None


def GetPlan(meta_net_def, key):  # noqa: N802
    return _ProtoMapGet(meta_net_def.plans, key)


GetPlanOriginal = GetPlan


def GetBlobs(meta_net_def, key):  # noqa: N802
    blobs = _ProtoMapGet(meta_net_def.blobs, key)
    return [] if blobs is None else blobs


def GetBlobsByTypePrefix(meta_net_def, blob_type_prefix):  # noqa: N802
    """Every blob listed under a key starting with the prefix, once, in first-seen order."""
    seen = {}
    for entry in meta_net_def.blobs:
        if entry.key.startswith(blob_type_prefix):
            for blob in entry.value:
                seen.setdefault(blob, len(seen))
    return list(seen)


def GetNet(meta_net_def, key):  # noqa: N802
    return _ProtoMapGet(meta_net_def.nets, key)


GetNetOriginal = GetNet


def GetApplicationSpecificInfo(meta_net_def, key):  # noqa: N802
    return _ProtoMapGet(meta_net_def.applicationSpecificInfo, key)


def AddBlobs(meta_net_def, blob_name, blob_def):  # noqa: N802
    """Append blob names under ``blob_name`` (creating the entry when it is new)."""
    blobs = _ProtoMapGet(meta_net_def.blobs, blob_name)
    if blobs is None:
        blobs = meta_net_def.blobs.add(key=blob_name).value
    blobs.extend(blob_def)


def ReplaceBlobs(meta_net_def, blob_name, blob_def):  # noqa: N802
    blobs = _ProtoMapGet(meta_net_def.blobs, blob_name)
    assert blobs is not None, f"The blob_name:{blob_name} does not exist"
    del blobs[:]
    blobs.extend(blob_def)


def AddPlan(meta_net_def, plan_name, plan_def):  # noqa: N802
    meta_net_def.plans.add(key=plan_name, value=plan_def)


def AddNet(meta_net_def, net_name, net_def):  # noqa: N802
    meta_net_def.nets.add(key=net_name, value=net_def)


def SetBlobsOrder(meta_net_def, blobs_order):  # noqa: N802
    meta_net_def.blobsOrder.extend(blobs_order)


def SetPreLoadBlobs(meta_net_def, pre_load_blobs):  # noqa: N802
    meta_net_def.preLoadBlobs.extend(pre_load_blobs)


def SetRequestOnlyEmbeddings(meta_net_def, request_only_embeddings):  # noqa: N802
    meta_net_def.requestOnlyEmbeddings.extend(request_only_embeddings)


def GetBlobsOrder(meta_net_def):  # noqa: N802
    return meta_net_def.blobsOrder


def SetTensorBoundShapes(meta_net_def, tensor_bound_shapes):  # noqa: N802
    meta_net_def.tensorBoundShapes.CopyFrom(tensor_bound_shapes)


def SetAOTConfig(meta_net_def, aot_config):  # noqa: N802
    meta_net_def.aotConfig.CopyFrom(aot_config)


def GetArgumentByName(net_def, arg_name):  # noqa: N802
    for arg in net_def.arg:
        if arg.name == arg_name:
            return arg
    return None


def AddModelIdArg(meta_net_def, net_def):  # noqa: N802
    """Copy the integer ``model_id`` argument of the predict net (if it has one) onto
    ``net_def``, replacing any it has: init nets share the predict net's id."""
    model_id = GetArgumentByName(meta_net_def.predict_net, "model_id")
    if model_id is None:
        return
    old = GetArgumentByName(net_def, "model_id")
    if old is not None:
        old.i = model_id.i
    else:
        net_def.arg.add(name="model_id", i=model_id.i)
