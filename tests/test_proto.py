"""proto/*.proto and the generated *_pb2 modules against Caffe2's own definitions.

The field tables below are written from Caffe2's caffe2/proto/caffe2.proto
(see shared/reference/caffe2_facts.md, section 1), metanet.proto,
predictor_consts.proto and hsm.proto, independently of the .proto files in this
repository, so a wrong number, label, type or default fails here.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from google.protobuf import text_format
from google.protobuf.descriptor import FieldDescriptor as FD

from caffe2lite.errors import ProtoParseError
from caffe2lite.proto import caffe2_pb2, hsm_pb2, metanet_pb2, predictor_consts_pb2
from caffe2lite.protoio import parse_binary, parse_proto, parse_text

ROOT = Path(__file__).resolve().parents[1]

# message: field number label type [default]   (label: opt / req / rep)
FIELD_TABLE = """
TensorProto: dims 1 rep int64 | data_type 2 opt enum FLOAT | float_data 3 rep float packed |
  int32_data 4 rep int32 packed | byte_data 5 opt bytes | string_data 6 rep bytes |
  name 7 opt string | device_detail 8 opt message | double_data 9 rep double packed |
  int64_data 10 rep int64 packed | segment 11 opt message | raw_data 13 opt bytes |
  data_format 15 opt uint32 0
TensorProto.Segment: begin 1 req int64 | end 2 req int64
QTensorProto: dims 1 rep int64 | precision 2 req int32 | scale 3 req double | bias 4 req double |
  is_signed 5 req bool | data 6 rep int32 packed | name 7 opt string |
  data_type 8 opt enum INT32 | scales 9 rep double | biases 10 rep double | axis 11 opt int32 |
  is_multiparam 12 opt bool False
TensorProtos: protos 1 rep message
TensorShape: dims 1 rep int64 | data_type 2 opt enum FLOAT | unknown_dims 3 rep int32 |
  unknown_shape 4 opt bool False | name 5 opt string
TensorShapes: shapes 1 rep message
TensorBoundShape: shape 1 opt message | dim_type 2 rep enum | name 3 opt string |
  shape_is_final 4 opt bool
TensorBoundShapes: shapes 1 rep message | max_batch_size 2 opt int64 | max_feature_len 3 opt int64
AOTConfig: max_batch_size 1 req int64 | max_seq_size 2 req int64 | in_batch_broadcast 3 req bool |
  onnxifi_blacklist_ops 4 opt string | onnxifi_min_ops 5 opt int32
Argument: name 1 opt string | f 2 opt float | i 3 opt int64 | s 4 opt bytes | floats 5 rep float |
  ints 6 rep int64 | strings 7 rep bytes | n 8 opt message | nets 9 rep message |
  t 10 opt message | tensors 11 rep message | qtensors 12 rep message
DeviceOption: device_type 1 opt int32 0 | device_id 2 opt int32 | random_seed 3 opt uint32 |
  node_name 4 opt string | numa_node_id 5 opt int32 | extra_info 6 rep string
OperatorDef: input 1 rep string | output 2 rep string | name 3 opt string | type 4 opt string |
  arg 5 rep message | device_option 6 opt message | engine 7 opt string |
  control_input 8 rep string | is_gradient_op 9 opt bool False | debug_info 10 opt string |
  domain 11 opt string | op_version 12 opt int64
MapFieldEntry: key 1 req string | val 2 req string
BackendOptions: backend_name 1 req string | option 2 rep message
PartitionInfo: name 1 req string | device_id 2 rep int32 | extra_info 3 opt string |
  backend_options 4 rep message
NetDef: name 1 opt string | op 2 rep message | type 3 opt string | num_workers 4 opt int32 |
  device_option 5 opt message | arg 6 rep message | external_input 7 rep string |
  external_output 8 rep string | partition_info 9 rep message
ExecutionStep: name 1 opt string | substep 2 rep message | network 3 rep string |
  num_iter 4 opt int64 | criteria_network 5 opt string | concurrent_substeps 6 opt bool |
  report_net 7 opt string | report_interval 8 opt int32 | should_stop_blob 9 opt string |
  only_once 10 opt bool | run_every_ms 11 opt int64 | create_workspace 12 opt bool |
  num_concurrent_instances 13 opt int32
PlanDef: name 1 opt string | network 2 rep message | execution_step 3 rep message
BlobProto: name 1 opt string | type 2 opt string | tensor 3 opt message | content 4 opt bytes |
  qtensor 5 opt message | content_num_chunks 6 opt int32 | content_chunk_id 7 opt int32
DBReaderProto: name 1 opt string | source 2 opt string | db_type 3 opt string | key 4 opt string
BlobSerializationOptions: blob_name_regex 1 opt string | chunk_size 2 opt int64 |
  float_format 3 opt enum
SerializationOptions: options 1 rep message
"""

# metanet.proto (MetaNetDef: what predictor_exporter stores) and predictor_consts.proto
# (the names of its parts, as string defaults).
METANET_TABLE = """
ModelInfo: project 1 opt string | modelClass 2 opt string | version 3 opt string |
  predictorType 4 opt string SINGLE_PREDICTOR | modelId 5 opt string
BlobsMap: key 1 req string | value 2 rep string
NetsMap: key 1 req string | value 2 req message
PlansMap: key 1 req string | value 2 req message
StringMap: key 1 req string | value 2 req string
MetaNetDef: blobs 1 rep message | nets 2 rep message | modelInfo 3 opt message |
  plans 4 rep message | applicationSpecificInfo 5 rep message | blobsOrder 6 rep string |
  preLoadBlobs 7 rep string | tensorBoundShapes 8 opt message |
  requestOnlyEmbeddings 9 rep string | aotConfig 10 opt message
"""
PREDICTOR_CONSTS_TABLE = """
PredictorConsts: META_NET_DEF 1 opt string !!META_NET_DEF |
  PREDICTOR_DBREADER 2 opt string !!PREDICTOR_DBREADER |
  PARAMETERS_BLOB_TYPE 3 opt string PARAMETERS_BLOB_TYPE |
  INPUTS_BLOB_TYPE 4 opt string INPUTS_BLOB_TYPE |
  OUTPUTS_BLOB_TYPE 5 opt string OUTPUTS_BLOB_TYPE |
  GLOBAL_INIT_NET_TYPE 6 opt string GLOBAL_INIT_NET_TYPE |
  PREDICT_INIT_NET_TYPE 7 opt string PREDICT_INIT_NET_TYPE |
  PREDICT_NET_TYPE 8 opt string PREDICT_NET_TYPE |
  SINGLE_PREDICTOR 9 opt string SINGLE_PREDICTOR | MULTI_PREDICTOR 10 opt string MULTI_PREDICTOR |
  TRAIN_INIT_PLAN_TYPE 11 opt string TRAIN_INIT_PLAN_TYPE |
  TRAIN_PLAN_TYPE 12 opt string TRAIN_PLAN_TYPE
"""
# hsm.proto (hierarchical softmax's tree and paths)
HSM_TABLE = """
NodeProto: children 1 rep message | word_ids 2 rep int32 | offset 3 opt int32 |
  name 4 opt string | scores 5 rep float
TreeProto: root_node 1 opt message
HierarchyProto: size 1 opt int32 | paths 2 rep message
PathProto: word_id 1 opt int32 | path_nodes 2 rep message
PathNodeProto: index 1 opt int32 | length 2 opt int32 | target 3 opt int32
"""

TYPE_CODES = {"int64": FD.TYPE_INT64, "int32": FD.TYPE_INT32, "uint32": FD.TYPE_UINT32,
              "float": FD.TYPE_FLOAT, "double": FD.TYPE_DOUBLE, "bool": FD.TYPE_BOOL,
              "string": FD.TYPE_STRING, "bytes": FD.TYPE_BYTES, "enum": FD.TYPE_ENUM,
              "message": FD.TYPE_MESSAGE}


def _parse_table(text=FIELD_TABLE):
    """{message: {field: (number, label, type, extras)}} from a field table."""
    blocks, table = [], {}
    for line in text.strip().splitlines():
        if line[0].isspace():
            blocks[-1] += " " + line.strip()
        else:
            blocks.append(line)
    for block in blocks:
        message, fields = block.split(":", 1)
        table[message] = {}
        for spec in fields.split("|"):
            name, number, label, ftype, *rest = spec.split()
            table[message][name] = (int(number), label, ftype, rest)
    return table


TABLE = _parse_table()
# generated module -> its table
TABLES = {caffe2_pb2: TABLE, metanet_pb2: _parse_table(METANET_TABLE),
          predictor_consts_pb2: _parse_table(PREDICTOR_CONSTS_TABLE),
          hsm_pb2: _parse_table(HSM_TABLE)}


def _descriptor(path: str, module=caffe2_pb2):
    cls = module
    for part in path.split("."):
        cls = getattr(cls, part)
    return cls.DESCRIPTOR


def _message_classes(module):
    out = []

    def walk(desc, cls):
        out.append(cls)
        for nested in desc.nested_types:
            walk(nested, getattr(cls, nested.name))

    for name, desc in module.DESCRIPTOR.message_types_by_name.items():
        walk(desc, getattr(module, name))
    return out


def _all_message_classes():
    return [cls for module in TABLES for cls in _message_classes(module)]


@pytest.mark.parametrize("name", ["caffe2", "metanet", "predictor_consts", "hsm"])
def test_generated_module_has_no_drift(tmp_path, name):
    spec = importlib.util.spec_from_file_location("gen_proto", ROOT / "tools" / "gen_proto.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert name in gen.PROTOS
    fresh = gen.generate(tmp_path, name)
    committed = ROOT / "caffe2lite" / "proto" / f"{name}_pb2.py"
    assert fresh.read_text() == committed.read_text(), (
        f"caffe2lite/proto/{name}_pb2.py is stale: run python tools/gen_proto.py")


def test_proto_file_header():
    lines = [ln for ln in (ROOT / "proto" / "caffe2.proto").read_text().splitlines()
             if ln.strip() and not ln.lstrip().startswith("//")]
    assert lines[0] == 'syntax = "proto2";'
    assert lines[1] == "package caffe2;"
    assert not any(ln.startswith(("import", "option")) for ln in lines)
    assert caffe2_pb2.DESCRIPTOR.package == "caffe2"


@pytest.mark.parametrize("module", list(TABLES), ids=lambda m: m.__name__.split(".")[-1])
def test_every_message_is_in_the_table_and_back(module):
    names = {c.DESCRIPTOR.full_name[len("caffe2."):] for c in _message_classes(module)}
    assert names == set(TABLES[module])
    assert module.DESCRIPTOR.package == "caffe2"


def _label(field):
    """'rep', 'req' or 'opt': protobuf 7 dropped FieldDescriptor.label, 4 and 5 lack is_repeated."""
    if hasattr(field, "is_repeated"):
        return "rep" if field.is_repeated else "req" if field.is_required else "opt"
    return {FD.LABEL_REPEATED: "rep", FD.LABEL_REQUIRED: "req"}.get(field.label, "opt")


def _is_packed(field):
    """Whether the field is declared packed (protobuf 4 has no FieldDescriptor.is_packed)."""
    return field.is_packed if hasattr(field, "is_packed") else field.GetOptions().packed


@pytest.mark.parametrize("module, message", [(m, name) for m, table in TABLES.items()
                                             for name in sorted(table)],
                         ids=lambda x: x if isinstance(x, str) else x.__name__.split(".")[-1])
def test_fields_match_caffe2(module, message):
    desc = _descriptor(message, module)
    expected = TABLES[module][message]
    assert set(desc.fields_by_name) == set(expected), message
    for name, (number, label, ftype, rest) in expected.items():
        field = desc.fields_by_name[name]
        assert field.number == number, f"{message}.{name}"
        assert field.type == TYPE_CODES[ftype], f"{message}.{name}"
        assert _label(field) == label, f"{message}.{name}"
        assert _is_packed(field) == ("packed" in rest), f"{message}.{name} packed"
        default = [r for r in rest if r != "packed"]
        if default:
            if ftype == "enum":
                want = field.enum_type.values_by_name[default[0]].number
            elif ftype == "bool":
                want = default[0] == "True"
            elif ftype == "string":
                want = default[0]
            else:
                want = int(default[0])
            assert field.has_default_value and field.default_value == want, f"{message}.{name}"


def test_enums_match_caffe2():
    dt = caffe2_pb2.TensorProto.DataType
    assert dict(dt.items()) == {
        "UNDEFINED": 0, "FLOAT": 1, "INT32": 2, "BYTE": 3, "STRING": 4, "BOOL": 5, "UINT8": 6,
        "INT8": 7, "UINT16": 8, "INT16": 9, "INT64": 10, "FLOAT16": 12, "DOUBLE": 13,
        "ZERO_COLLISION_HASH": 14, "REBATCHING_BUFFER": 15}
    assert dict(caffe2_pb2.TensorProto.SerializationFormat.items()) == {
        "FMT_PROTOBUF": 0, "FMT_BFLOAT16": 1}
    assert [caffe2_pb2.DeviceTypeProto.Name(i) for i in range(12)] == [
        "PROTO_CPU", "PROTO_CUDA", "PROTO_MKLDNN", "PROTO_OPENGL", "PROTO_OPENCL",
        "PROTO_IDEEP", "PROTO_HIP", "PROTO_FPGA", "PROTO_ORT", "PROTO_XLA", "PROTO_MPS",
        "PROTO_COMPILE_TIME_MAX_DEVICE_TYPES"]
    assert dict(caffe2_pb2.TensorBoundShape.DimType.items()) == {
        "UNKNOWN": 0, "CONSTANT": 1, "BATCH": 2, "BATCH_OF_FEATURE_MAX": 3,
        "BATCH_OF_FEATURE_MAX_DEFAULT": 4, "FEATURE_MAX": 5, "FEATURE_MAX_DEFAULT": 6}
    assert dict(caffe2_pb2.BlobSerializationOptions.FloatFormat.items()) == {
        "FLOAT_DEFAULT": 0, "FLOAT_PROTOBUF": 1, "FLOAT_BFLOAT16": 2}


def test_device_aliases():
    assert (caffe2_pb2.CPU, caffe2_pb2.CUDA, caffe2_pb2.HIP) == (0, 1, 6)
    assert caffe2_pb2.MKLDNN == 2 and caffe2_pb2.IDEEP == 5
    assert caffe2_pb2.CPU == caffe2_pb2.PROTO_CPU and caffe2_pb2.CUDA == caffe2_pb2.PROTO_CUDA


def test_defaults_of_empty_messages():
    assert caffe2_pb2.TensorProto().data_type == caffe2_pb2.TensorProto.FLOAT
    assert caffe2_pb2.TensorProto().data_format == 0
    assert caffe2_pb2.QTensorProto().data_type == caffe2_pb2.TensorProto.INT32
    assert caffe2_pb2.TensorShape().data_type == caffe2_pb2.TensorProto.FLOAT
    assert caffe2_pb2.DeviceOption().device_type == 0
    assert caffe2_pb2.OperatorDef().is_gradient_op is False
    # Defaults are not written: an empty message serialises to nothing.
    assert caffe2_pb2.TensorProto().SerializeToString() == b""


# -- populated round trips ---------------------------------------------------------
def _value(field, i):
    t = field.type
    if t in (FD.TYPE_INT64, FD.TYPE_INT32):
        return -(7 + i) if field.name != "precision" else 8 + i
    if t == FD.TYPE_UINT32:
        return 4_000_000_000 - i
    if t == FD.TYPE_FLOAT:
        return 1.5 + i  # exactly representable in float32
    if t == FD.TYPE_DOUBLE:
        return 0.1 + i
    if t == FD.TYPE_BOOL:
        return True
    if t == FD.TYPE_STRING:
        return f"{field.name}-{i}-\u00e9"
    if t == FD.TYPE_BYTES:
        return bytes([0, 255, i, 10])
    if t == FD.TYPE_ENUM:
        values = field.enum_type.values
        return values[-1 - i % len(values)].number  # a non-default value
    raise AssertionError(t)


def _populate(msg, depth=0):
    """Set every field of msg (2 entries per repeated field), nesting messages to depth 2."""
    for field in msg.DESCRIPTOR.fields:
        if field.type == FD.TYPE_MESSAGE:
            if depth >= 2:  # deep enough: recursive types (NetDef in Argument) stop here
                continue
            if _label(field) == "rep":
                for _ in range(2):
                    _populate(getattr(msg, field.name).add(), depth + 1)
            else:
                _populate(getattr(msg, field.name), depth + 1)
        elif _label(field) == "rep":
            getattr(msg, field.name).extend(_value(field, i) for i in range(2))
        else:
            setattr(msg, field.name, _value(field, 0))
    return msg


@pytest.mark.parametrize("cls", _all_message_classes(), ids=lambda c: c.DESCRIPTOR.name)
def test_populated_round_trip_binary_and_text(cls):
    msg = _populate(cls())
    assert msg.IsInitialized()
    set_fields = {f.name for f, _ in msg.ListFields()}
    assert set_fields == set(msg.DESCRIPTOR.fields_by_name)  # nothing left unset

    wire = msg.SerializeToString()
    back = parse_binary(wire, cls)
    assert back == msg and back.SerializeToString() == wire

    text = text_format.MessageToString(msg)
    back_text = parse_text(text, cls)
    assert back_text == msg
    assert text_format.MessageToString(back_text) == text


def test_nested_messages_survive_inside_a_net():
    net = caffe2_pb2.NetDef(name="outer")
    op = net.op.add(type="If", input=["c"], output=["y"])
    inner = op.arg.add(name="then_net").n
    inner.name = "then"
    inner.op.add(type="Relu", input=["x"], output=["y"])
    t = op.arg.add(name="value").t
    t.dims.extend([2])
    t.float_data.extend([1.0, 2.0])
    t.segment.begin, t.segment.end = 0, 2
    net.partition_info.add(name="p0", device_id=[1]).backend_options.add(
        backend_name="glow").option.add(key="k", val="v")
    for data in (net.SerializeToString(), text_format.MessageToString(net)):
        back = parse_proto(data, caffe2_pb2.NetDef)
        assert back == net
        assert back.op[0].arg[0].n.op[0].type == "Relu"
        assert back.partition_info[0].backend_options[0].option[0].val == "v"


@pytest.mark.parametrize("cls, field", [
    (caffe2_pb2.TensorProto.Segment, "end"),
    (caffe2_pb2.MapFieldEntry, "val"),
    (caffe2_pb2.QTensorProto, "is_signed"),
    (caffe2_pb2.PartitionInfo, "name"),
])
def test_missing_required_field_is_a_parse_error(cls, field):
    msg = _populate(cls())
    msg.ClearField(field)
    with pytest.raises(Exception):
        msg.SerializeToString()  # protobuf refuses to write it
    wire = msg.SerializePartialToString()
    with pytest.raises(ProtoParseError, match=field):
        parse_binary(wire, cls)
    with pytest.raises(ProtoParseError):
        parse_text(text_format.MessageToString(msg), cls)


def test_malformed_text_and_binary_name_the_source():
    with pytest.raises(ProtoParseError, match=r"my\.pbtxt.*text format.*1:"):
        parse_proto("name: 'x' op { type: }", caffe2_pb2.NetDef, "my.pbtxt")
    with pytest.raises(ProtoParseError, match=r"blob\.pb.*binary"):
        parse_proto(b"\x0a\xff\xff\xff\xff\x0f", caffe2_pb2.NetDef, "blob.pb")
    with pytest.raises(ProtoParseError, match="expected bytes, text"):
        parse_proto(12, caffe2_pb2.NetDef)


@pytest.mark.parametrize("data", [
    b"\x00\x01PK\x03\x04\x10garbage\x07bell",  # UTF-8, but control bytes
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",  # not UTF-8: an image
    bytes(range(256)) * 3,
])
def test_a_binary_file_of_another_kind_gives_a_readable_message(data):
    """Every format tried is named, and no raw control byte or bare codec message shows."""
    with pytest.raises(ProtoParseError) as caught:
        parse_proto(data, caffe2_pb2.NetDef, "photo.pb")
    message = str(caught.value)
    assert message.isprintable(), repr(message)
    assert message.startswith("photo.pb: cannot be parsed as a NetDef in binary or text format")
    assert "photo.pb: not a valid NetDef in binary format" in message
    assert "photo.pb: not a valid NetDef in text format" in message
    assert "stray trailing" not in message  # a few bytes of anything parse as some message
    if data[0] == 0x89:
        assert "byte 0x89 at offset 0 is not UTF-8" in message
    elif data.startswith(b"\x00\x01PK"):
        assert "\\x00\\x01PK" in message  # the text parser's quote, escaped


def test_stray_trailing_byte_is_diagnosed():
    net = caffe2_pb2.NetDef(name="n", external_input=["x"])
    net.op.add(type="Relu", input=["x"], output=["y"])
    with pytest.raises(ProtoParseError, match="1 stray trailing byte"):
        parse_binary(net.SerializeToString() + b"\x80", caffe2_pb2.NetDef, "n.pb")



# -- files -------------------------------------------------------------------------------
def _plan():
    plan = caffe2_pb2.PlanDef(name="plan")
    net = plan.network.add(name="train")
    net.op.add(type="Relu", input=["x"], output=["y"])
    step = plan.execution_step.add(name="outer", num_iter=3)
    step.substep.add(name="inner", network=["train"], should_stop_blob="stop")
    return plan


@pytest.mark.parametrize("filename, is_text", [("plan.pbtxt", True), ("plan.pb", False),
                                               ("text_named.pb", None)])
def test_load_plan_and_net_files(tmp_path, filename, is_text):
    from caffe2lite.protoio import load_net, load_plan, save_proto

    plan = _plan()
    path = tmp_path / filename
    if is_text is None:  # text content behind a binary-looking name still loads
        path.write_text(text_format.MessageToString(plan))
    else:
        save_proto(plan, path)
        assert (path.read_bytes() == plan.SerializeToString()) == (not is_text)
    assert load_plan(path) == plan
    save_proto(plan.network[0], tmp_path / "net.pbtxt")
    assert load_net(tmp_path / "net.pbtxt") == plan.network[0]
    with pytest.raises(ProtoParseError, match="PlanDef"):
        load_plan(tmp_path / "net.pbtxt")  # a NetDef's fields are not a PlanDef's


@pytest.mark.parametrize("field", ["name", "input", "type", "arg_name", "nested"])
def test_binary_string_fields_must_be_utf8(field):
    # proto2's wire format carries `string` fields unchecked; one that is not UTF-8
    # is a ProtoParseError naming the field, not bytes that reach a blob name.
    net = caffe2_pb2.NetDef(name="NET")
    op = net.op.add(type="TYPE", input=["IN"], output=["OUT"])
    op.arg.add(name="ARG", i=1)
    plan = caffe2_pb2.PlanDef(name="plan")
    plan.network.add(name="inner").op.add(type="Relu", input=["DEEP"], output=["y"])
    marker, message, cls = {"name": (b"NET", net, caffe2_pb2.NetDef),
                            "input": (b"IN", net, caffe2_pb2.NetDef),
                            "type": (b"TYPE", net, caffe2_pb2.NetDef),
                            "arg_name": (b"ARG", net, caffe2_pb2.NetDef),
                            "nested": (b"DEEP", plan, caffe2_pb2.PlanDef)}[field]
    data = message.SerializeToString()
    assert data.count(marker) == 1
    bad = data.replace(marker, b"\xe9" + marker[1:])
    with pytest.raises(ProtoParseError, match=r"(input|name|type)(\[0\])? is not valid UTF-8"):
        parse_binary(bad, cls)
    assert parse_binary(data, cls) == message  # the intact bytes still parse
