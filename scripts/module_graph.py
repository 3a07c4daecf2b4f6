"""Print the package's module graph as a Mermaid flowchart, drawn from the source.

Every ``profiling`` module (``store`` and ``publish`` as one node each) and the modules it
imports, at the top or inside a function; ``_errors`` (which every module may import) is left
out. ``docs/architecture.md`` holds this output, and a test holds the document to it:

    python scripts/module_graph.py
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "profiling"
COLLAPSED = ("store", "publish")
LEFT_OUT = {"_errors", "__init__"}


def node(module: str) -> str:
    """``profiling.store._backends`` -> ``store``; ``profiling.ingest`` -> ``ingest``."""
    parts = module.split(".")[1:]
    if not parts:
        return "__init__"
    return parts[0]


def edges() -> list[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        here = node(".".join(p for p in rel.parts if p != "__init__") or "profiling")
        for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(n, ast.ImportFrom) and n.module and n.level == 0:
                if n.module == "profiling":
                    targets = [f"profiling.{a.name}" for a in n.names]
                elif n.module.startswith("profiling."):
                    targets = [n.module]
            elif isinstance(n, ast.Import):
                targets = [a.name for a in n.names if a.name.startswith("profiling.")]
            for t in targets:
                there = node(t)
                if there != here and here not in LEFT_OUT and there not in LEFT_OUT and (
                        there != "__version__"):
                    out.add((here, there))
    return sorted(out)


def mermaid() -> str:
    lines = ["flowchart LR"]
    lines += [f"    {a} --> {b}" for a, b in edges()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(mermaid())
