"""The floors of caffe2lite hold: read every import of every module with ``ast``.

* ``caffe2lite/runtime/`` (the engine) imports nothing of caffe2lite outside
  itself, ``caffe2lite.proto`` and ``caffe2lite._native`` -- not even lazily;
* ``operators/`` (installed as ``caffe2lite.operators``) imports only the
  engine, ``proto``, ``_native`` and itself;
* no two modules of caffe2lite import each other, directly or round a circle;
* every top-level module and package of caffe2lite is in the layout table of
  docs/architecture.md, and its rows for runtime/ and distributed/ list their files.

Imports inside functions count as much as those at the top, and so does
``importlib.import_module`` of a literal name.  A failure names the file,
the line and the import.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENGINE_MAY_IMPORT = ("caffe2lite.runtime", "caffe2lite.proto", "caffe2lite._native")
OPERATORS_MAY_IMPORT = ENGINE_MAY_IMPORT + ("caffe2lite.operators",)


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[0] == "operators":
        parts = ["caffe2lite"] + parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    files = [p for p in (ROOT / "caffe2lite").rglob("*.py") if "proto" not in p.parts]
    files += list((ROOT / "operators").rglob("*.py"))
    return {_module_name(p): p for p in files}


MODULES = _sources()


def _resolve(name: str) -> str | None:
    """The caffe2lite module an imported name stands for (the longest prefix that is one)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in MODULES or candidate.startswith(("caffe2lite.proto", "caffe2lite._native")):
            return candidate
    return None


def _imports(module: str, path: Path):
    """(line, text, imported caffe2lite module) for every import in the file."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                       for a in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module" \
                and node.args and isinstance(node.args[0], ast.Constant):
            targets = [node.args[0].value]
        for target in targets:
            if target.startswith("caffe2lite"):
                resolved = _resolve(target)
                if resolved is not None:
                    yield node.lineno, ast.get_source_segment(path.read_text(), node), resolved


def _where(path: Path, line: int, text: str) -> str:
    return f"{path.relative_to(ROOT)}:{line}: {text.splitlines()[0]}"


def _imports_outside(package: str, allowed: tuple[str, ...]) -> list[str]:
    """Every import, in the modules of ``package``, of a module outside ``allowed``."""
    return [_where(path, line, text)
            for module, path in MODULES.items() if module.startswith(package)
            for line, text, target in _imports(module, path)
            if not target.startswith(allowed)]


def test_the_engine_imports_nothing_above_it():
    bad = _imports_outside("caffe2lite.runtime", ENGINE_MAY_IMPORT)
    assert not bad, "caffe2lite/runtime/ imports above the engine:\n" + "\n".join(bad)


def test_operators_import_only_the_engine():
    bad = _imports_outside("caffe2lite.operators", OPERATORS_MAY_IMPORT)
    assert not bad, "operators/ imports more than the engine:\n" + "\n".join(bad)


def test_no_import_circles():
    graph = {module: {} for module in MODULES}
    for module, path in MODULES.items():
        for line, text, target in _imports(module, path):
            if target in MODULES and target != module:
                graph[module].setdefault(target, _where(path, line, text))
    circles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node, path):
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                circles.append("\n  ".join(graph[a][b] for a, b in zip(cycle, cycle[1:])))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not circles, "import circles:\n  " + "\n\n  ".join(circles)


def _layout_table() -> str:
    text = (ROOT / "docs" / "architecture.md").read_text()
    start = text.index("## Layout")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def _package_entries(folder: Path) -> list[str]:
    """'name.py' and 'name/' for the modules and packages in ``folder``."""
    return sorted(p.name if p.is_file() else p.name + "/" for p in folder.iterdir()
                  if (p.suffix == ".py" and p.stem not in ("__init__", "__main__"))
                  or (p.is_dir() and (p / "__init__.py").exists()))


def test_layout_table_lists_every_top_level_module():
    table = _layout_table()
    missing = [entry for entry in _package_entries(ROOT / "caffe2lite")
               if f"`{entry}`" not in table and f"`caffe2lite/{entry}`" not in table]
    assert not missing, f"docs/architecture.md's layout table does not name: {missing}"


def test_layout_table_matches_the_engine_and_distributed_folders():
    table = _layout_table()
    for folder in ("runtime", "distributed"):
        row = next(line for line in table.splitlines()
                   if line.startswith(f"| `caffe2lite/{folder}/` |"))
        listed = sorted(set(re.findall(r"`(\w+\.py|\w+/)`", row)) - {"__init__.py"})
        assert listed == _package_entries(ROOT / "caffe2lite" / folder), row
