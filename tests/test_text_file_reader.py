"""CreateTextFileReader / TextFileReaderRead and caffe2lite.text_file_reader.TextFileReader."""

import numpy as np
import pytest

from caffe2lite import core, workspace
from caffe2lite.errors import Caffe2LiteError
from caffe2lite.schema import FetchRecord, Scalar, Struct
from caffe2lite.text_file_reader import TextFileReader

ROWS = [("l1f1", "l1f2", 0.456), ("l2f1", "l2f2", 0.789), ("l3f1", "l3f2", 0.10101),
        ("l4f1", "l4f2", -24342.64)]


@pytest.fixture(autouse=True)
def fresh_workspace():
    workspace.ResetWorkspace()
    yield
    workspace.ResetWorkspace()


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "rows.tsv"
    path.write_text("".join("\t".join(str(v) for v in row) + "\n" for row in ROWS))
    return path


def read_all(reader_blob, n_fields, batch_size):
    """Every batch the reader returns until an empty one, as lists of Python values."""
    batches = []
    read = core.CreateOperator("TextFileReaderRead", [reader_blob],
                               [f"f{i}" for i in range(n_fields)], batch_size=batch_size)
    for _ in range(100):
        workspace.RunOperatorOnce(read)
        fields = [workspace.FetchBlob(f"f{i}") for i in range(n_fields)]
        if fields[0].size == 0:
            return batches
        batches.append(fields)
    raise AssertionError("the reader never ran out")


@pytest.mark.parametrize("num_passes", [1, 2])
@pytest.mark.parametrize("batch_size", [1, 3, 4, 5])
def test_reads_every_row_of_every_pass_in_batches(table, num_passes, batch_size):
    workspace.RunOperatorOnce(core.CreateOperator(
        "CreateTextFileReader", [], ["reader"], filename=str(table), num_passes=num_passes,
        field_types=[core.DataType.STRING, core.DataType.STRING, core.DataType.FLOAT]))
    batches = read_all("reader", 3, batch_size)
    expected = ROWS * num_passes
    assert [len(b[0]) for b in batches] == \
        [min(batch_size, len(expected) - i) for i in range(0, len(expected), batch_size)]
    col0 = np.concatenate([b[0] for b in batches])
    col2 = np.concatenate([b[2] for b in batches])
    assert col0.dtype == object and col0.tolist() == [r[0].encode() for r in expected]
    assert col2.dtype == np.float32
    np.testing.assert_array_equal(col2, np.array([r[2] for r in expected], np.float32))


def test_a_bad_row_fails_naming_it_and_is_read_again(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("a\t1\nb\t2\nc\n")
    workspace.RunOperatorOnce(core.CreateOperator(
        "CreateTextFileReader", [], ["reader"], filename=str(path),
        field_types=[core.DataType.STRING, core.DataType.FLOAT]))
    read = core.CreateOperator("TextFileReaderRead", ["reader"], ["s", "x"], batch_size=2)
    workspace.RunOperatorOnce(read)
    assert workspace.FetchBlob("x").tolist() == [1.0, 2.0]
    for _ in range(2):  # the failed rows stay in the reader
        with pytest.raises(Caffe2LiteError, match="Invalid number of columns at row 3"):
            workspace.RunOperatorOnce(read)
        assert workspace.FetchBlob("x").tolist() == [1.0, 2.0]


def test_a_float_that_does_not_parse_is_refused(tmp_path):
    path = tmp_path / "nan.tsv"
    path.write_text("1.5\nabc\n")
    workspace.RunOperatorOnce(core.CreateOperator(
        "CreateTextFileReader", [], ["reader"], filename=str(path),
        field_types=[core.DataType.FLOAT]))
    with pytest.raises(Caffe2LiteError, match="FLOAT.*abc"):
        workspace.RunOperatorOnce(core.CreateOperator(
            "TextFileReaderRead", ["reader"], ["x"], batch_size=5))


@pytest.mark.parametrize("args, match", [
    ({"filename": "/no/such/file.tsv", "field_types": [1]}, "cannot open"),
    ({"filename": "x", "field_types": []}, "field_types arg must be non-empty"),
    ({"filename": "x", "field_types": [2]}, "STRING .* and FLOAT"),
])
def test_bad_arguments_are_refused(args, match):
    with pytest.raises(Caffe2LiteError, match=match):
        workspace.RunOperatorOnce(core.CreateOperator("CreateTextFileReader", [], ["r"],
                                                      **args))
    assert not workspace.HasBlob("r")


def test_outputs_must_match_the_fields(table):
    workspace.RunOperatorOnce(core.CreateOperator(
        "CreateTextFileReader", [], ["reader"], filename=str(table),
        field_types=[core.DataType.STRING] * 3))
    with pytest.raises(Caffe2LiteError, match="Expected 3 got 2"):
        workspace.RunOperatorOnce(core.CreateOperator("TextFileReaderRead", ["reader"],
                                                      ["a", "b"]))


def test_text_file_reader_reads_a_record_until_should_stop(table):
    schema = Struct(("field1", Scalar(dtype=str)), ("field2", Scalar(dtype=str)),
                    ("field3", Scalar(dtype=np.float32)))
    init_net = core.Net("init")
    reader = TextFileReader(init_net, filename=str(table), schema=schema, batch_size=3,
                            num_passes=2)
    workspace.RunNetOnce(init_net)
    net = core.Net("read")
    should_stop, record = reader.read_record(net)
    values = []
    for _ in range(10):
        workspace.RunNetOnce(net)
        values.append(FetchRecord(record).field_blobs()[2])
        if workspace.FetchBlob(should_stop):
            break
    np.testing.assert_array_equal(np.concatenate(values),
                                  np.array([r[2] for r in ROWS * 2], np.float32))
