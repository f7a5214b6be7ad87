"""README's training-API section runs as written and prints what its comments say."""

from caffe2lite.runtime import registry
from test_readme import _run_blocks, _section_code


def test_training_api_example_runs():
    blocks = _section_code("training-api")
    assert len(blocks) == 1
    with registry.isolated():
        printed, expected = _run_blocks(blocks)
    assert expected and printed == expected
