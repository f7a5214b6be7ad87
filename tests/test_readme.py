"""The README's Python examples run as written and print what their comments say."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from caffe2lite.runtime import registry

README = Path(__file__).resolve().parents[1] / "README.md"


def _section_code(section: str) -> list[str]:
    text = README.read_text()
    start = text.index(f"<!-- section: {section} -->")
    end = text.find("\n## ", start)
    body = text[start:end if end != -1 else None]
    return re.findall(r"```python\n(.*?)```", body, flags=re.S)


def _run_blocks(blocks):
    """Exec the blocks in one namespace; return (printed lines, expected lines)."""
    namespace: dict = {}
    printed, expected = [], []
    for block in blocks:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(block, str(README), "exec"), namespace)  # noqa: S102
        printed += out.getvalue().splitlines()
        expected += [m.group(1).rstrip() for m in re.finditer(r"print\(.*\)\s+# (.*)", block)]
    return printed, expected


@pytest.mark.parametrize("section, n_blocks", [("quickstart", 2), ("add-operator", 2),
                                               ("conv-pool", 1), ("norm-ops", 1),
                                               ("gradients", 2), ("detection", 2),
                                               ("breadth-math", 1), ("model-tools", 4)])
def test_readme_examples_run(section, n_blocks):
    blocks = _section_code(section)
    assert len(blocks) == n_blocks
    with registry.isolated():
        printed, expected = _run_blocks(blocks)
    assert expected, "the examples say what they print"
    assert printed == expected
