"""The walls between modules (docs/architecture.md): checked on the source, so that a change
that breaks one fails here rather than in a reviewer's reading."""

from __future__ import annotations

import ast
from pathlib import Path

import profiling

SRC = Path(__file__).resolve().parents[1] / "src" / "profiling"


def _imports(path: Path) -> set[str]:
    """The ``profiling`` modules a source file imports, at the top or inside a function."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "profiling":
                out |= {f"profiling.{a.name}" for a in node.names}
            elif node.module.startswith("profiling."):
                out.add(node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("profiling.")}
    return out


def _module(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_only_the_command_line_imports_the_pipeline():
    """``pipeline`` sequences the stages; the stages, the store and publishing never call
    back into it (the store once did, for the form and the boundaries)."""
    importers = sorted(_module(p) for p in SRC.rglob("*.py")
                       if "profiling.pipeline" in _imports(p) and p.name != "pipeline.py")
    assert importers == ["profiling.cli"]


def test_every_error_of_the_package_is_one_family_exported_from_the_top():
    """Every exception class is defined in ``_errors`` and exported by the package."""
    defined = {}
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Error"):
                defined[node.name] = _module(path)
    assert set(defined.values()) == {"profiling._errors"}, defined
    for name in defined:
        error = getattr(profiling, name)
        assert issubclass(error, profiling.ProfilingError) and name in profiling.__all__


def test_the_documented_module_graph_is_the_codes():
    import importlib.util
    import re

    root = SRC.parents[1]
    spec = importlib.util.spec_from_file_location("module_graph",
                                                  root / "scripts" / "module_graph.py")
    assert spec is not None and spec.loader is not None
    graph = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(graph)
    doc = (root / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = re.search(r"```mermaid\n(.*?)```", doc, re.S)
    assert block is not None
    assert block.group(1) == graph.mermaid(), "run scripts/module_graph.py into the document"
