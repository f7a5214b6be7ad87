"""Every Python example in README.md and docs/*.md runs as written and prints what its
comments say.

The blocks of one file run in order in one namespace (a later example may use what an
earlier one made), in a fresh workspace, a throw-away current folder and an isolated
operator registry. A comment ``# expected output`` after a ``print(...)`` is what that
line must print. A block that cannot run here (it needs a GPU, a cluster, files the
reader has) is marked just above it with ``<!-- sketch: why -->`` and is not run; every
other block is.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from caffe2lite import workspace
from caffe2lite.runtime import registry

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
BLOCK = re.compile(r"(?:<!-- sketch: (?P<why>[^>]*?) -->\s*\n)?```python\n(?P<code>.*?)```",
                   re.S)


def python_blocks(path: Path) -> list[tuple[str, str | None]]:
    """(code, reason it is only a sketch or None) for each ```python block of ``path``."""
    return [(m["code"], m["why"]) for m in BLOCK.finditer(path.read_text())]


def run_blocks(blocks, source: str):
    """Exec the blocks in one namespace; return (printed lines, expected lines)."""
    namespace: dict = {}
    printed, expected = [], []
    for block in blocks:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(block, source, "exec"), namespace)  # noqa: S102
        printed += out.getvalue().splitlines()
        expected += [m.group(1).rstrip() for m in re.finditer(r"print\(.*\)\s+# (.*)", block)]
    return printed, expected


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_examples_run_and_print_what_they_say(path, tmp_path, monkeypatch):
    blocks = [code for code, sketch in python_blocks(path) if sketch is None]
    if not blocks:
        pytest.skip(f"{path.name} has no runnable Python example")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # an example's own module (my_ops.py) imports
    workspace.ResetWorkspace(str(tmp_path))
    try:
        with registry.isolated():
            printed, expected = run_blocks(blocks, str(path))
    finally:  # an example may confine or switch the workspace (errors-and-safety.md does)
        workspace.SwitchWorkspace("default", True)
        workspace.current().limits = None
    assert printed == expected


def test_every_sketch_says_why():
    for path in DOCUMENTS:
        for code, sketch in python_blocks(path):
            assert sketch is None or sketch.strip(), f"{path.name}: a sketch without a reason"


def test_readme_starts_short_and_points_to_the_docs():
    readme = (ROOT / "README.md").read_text()
    first_example = readme.index("```python")
    assert first_example < 3000, "the first example must come within the first screen"
    for doc in DOCUMENTS[1:]:
        assert f"docs/{doc.name}" in readme, f"README's contents do not link {doc.name}"
